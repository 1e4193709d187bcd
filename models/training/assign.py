"""Which grid cells and anchors learn each ground-truth box (YOLOv5 target assignment).

A box is matched to every anchor whose width and height ratios to it are all within
``anchor_t``; each match is learned in the box's own cell and in the two neighbouring cells
nearest to its centre (one along x, one along y), which triples the positives and lets the
centre offset ``2σ − 0.5`` span (−0.5, 1.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Assignment", "assign_targets"]


@dataclass
class Assignment:
    """Positives of one scale: indices into ``[B, na, ny, nx]`` and their regression targets.

    ``box`` is ``(x offset from cell corner, y offset, w, h)`` in grid units; ``anchor`` the
    matched anchor size in grid units; ``cls`` the class index.
    """

    b: torch.Tensor
    a: torch.Tensor
    gj: torch.Tensor
    gi: torch.Tensor
    box: torch.Tensor
    anchor: torch.Tensor
    cls: torch.Tensor


def assign_targets(
    targets: torch.Tensor, anchors: torch.Tensor, grid: tuple[int, int], stride: float, anchor_t: float
) -> Assignment:
    """Assign ``targets`` ``[N, 6]`` (batch index, class, cx, cy, w, h in input pixels) to one scale.

    Args:
        anchors: ``[na, 2]`` anchor sizes in grid units.
        grid: ``(ny, nx)`` of this scale.
        stride: input pixels per grid cell.
        anchor_t: largest allowed width or height ratio between box and anchor.
    """
    ny, nx = grid
    t = targets.to(anchors.dtype)
    gxywh = t[:, 2:6] / stride
    ratio = gxywh[:, None, 2:4] / anchors[None]  # [N, na, 2]
    ok = torch.max(ratio, 1 / ratio).amax(2) < anchor_t
    ti, ai = ok.nonzero(as_tuple=True)
    gxy, gwh = gxywh[ti, :2], gxywh[ti, 2:]
    cell = gxy.floor()
    frac = gxy - cell
    # Own cell, then the nearer neighbour along x and along y if it exists on the grid.
    step = torch.where(frac < 0.5, -1.0, 1.0)
    cand_cells, cand_idx = [cell], [torch.arange(len(ti), device=t.device)]
    for axis, limit in ((0, nx), (1, ny)):
        moved = cell.clone()
        moved[:, axis] += step[:, axis]
        keep = (moved[:, axis] >= 0) & (moved[:, axis] < limit)
        cand_cells.append(moved[keep])
        cand_idx.append(keep.nonzero(as_tuple=True)[0])
    cells = torch.cat(cand_cells)
    idx = torch.cat(cand_idx)
    gi = cells[:, 0].long().clamp(0, nx - 1)
    gj = cells[:, 1].long().clamp(0, ny - 1)
    box = torch.cat((gxy[idx] - cells, gwh[idx]), 1)
    a = ai[idx]
    return Assignment(t[ti[idx], 0].long(), a, gj, gi, box, anchors[a], t[ti[idx], 1].long())
