"""Which grid cells and anchors learn each ground-truth box (YOLOv5 target assignment).

A box is matched to every anchor whose width and height ratios to it are all within
``anchor_t``; each match is learned in the box's own cell and in neighbouring cells near its
centre, which lets the centre offset ``2σ − 0.5`` span (−0.5, 1.5). Two rules pick the
neighbours:

- ``symmetric`` (emsdeploy's): the nearer neighbour along x and along y, whenever it lies on
  the grid. A centre exactly on a grid line or half cell still gets one neighbour per axis.
- ``official`` (YOLOv5 ``build_targets``, as EMS-YOLO trains): along each axis, with ``g`` the
  centre in grid units and ``n`` the grid size, the −1 neighbour if ``g % 1 < 0.5 and g > 1``,
  the +1 neighbour if ``(n − g) % 1 < 0.5 and n − g > 1``, its cell being ``floor(g + 0.5)``.
  Off the grid lines this equals ``symmetric``; on them it differs: an integer ``g`` gets its own
  cell twice (the +1 cell rounds back to it) and no −1 neighbour at ``g = 1``; a half-cell ``g``
  gets no neighbour. Positives come in the official order (own, −x, −y, +x, +y; then anchor;
  then target row), which decides the objectness target ``last`` (see :mod:`.loss`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["ASSIGN_RULES", "Assignment", "assign_targets"]

ASSIGN_RULES = ("official", "symmetric")


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
    targets: torch.Tensor,
    anchors: torch.Tensor,
    grid: tuple[int, int],
    stride: float,
    anchor_t: float,
    rule: str = "symmetric",
) -> Assignment:
    """Assign ``targets`` ``[N, 6]`` (batch index, class, cx, cy, w, h in input pixels) to one scale.

    Args:
        anchors: ``[na, 2]`` anchor sizes in grid units.
        grid: ``(ny, nx)`` of this scale.
        stride: input pixels per grid cell.
        anchor_t: largest allowed width or height ratio between box and anchor.
        rule: ``symmetric`` or ``official`` (module docstring).
    """
    if rule == "symmetric":
        return _symmetric(targets, anchors, grid, stride, anchor_t)
    if rule == "official":
        return _official(targets, anchors, grid, stride, anchor_t)
    raise ValueError(f"assignment rule {rule!r}; allowed: {', '.join(ASSIGN_RULES)}")


def _symmetric(
    targets: torch.Tensor, anchors: torch.Tensor, grid: tuple[int, int], stride: float, anchor_t: float
) -> Assignment:
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


def _official(
    targets: torch.Tensor, anchors: torch.Tensor, grid: tuple[int, int], stride: float, anchor_t: float
) -> Assignment:
    ny, nx = grid
    t = targets.to(anchors.dtype)
    gxywh = t[:, 2:6] / stride
    gxy = gxywh[:, :2]
    ratio = gxywh[None, :, 2:4] / anchors[:, None]  # [na, N, 2]: anchor-major, as the official order
    match = torch.max(ratio, 1 / ratio).amax(2) < anchor_t
    size = torch.tensor([nx, ny], dtype=gxy.dtype, device=gxy.device)
    near_low = ((gxy % 1 < 0.5) & (gxy > 1)).T  # [2, N]: the −x, −y neighbours exist
    near_high = (((size - gxy) % 1 < 0.5) & (size - gxy > 1)).T  # the +x, +y ones
    always = torch.ones_like(near_low[0])
    # (condition, offset subtracted from the centre before truncating to a cell)
    groups = (
        (always, (0.0, 0.0)),
        (near_low[0], (0.5, 0.0)),
        (near_low[1], (0.0, 0.5)),
        (near_high[0], (-0.5, 0.0)),
        (near_high[1], (0.0, -0.5)),
    )
    rows, anchor_idx, offsets = [], [], []
    for cond, shift in groups:
        ai, ti = (match & cond[None]).nonzero(as_tuple=True)
        rows.append(ti)
        anchor_idx.append(ai)
        offsets.append(torch.tensor(shift, dtype=gxy.dtype, device=gxy.device).expand(len(ti), 2))
    ti, a, off = torch.cat(rows), torch.cat(anchor_idx), torch.cat(offsets)
    cell = (gxy[ti] - off).long()
    gi = cell[:, 0].clamp(0, nx - 1)
    gj = cell[:, 1].clamp(0, ny - 1)
    # The regression target is relative to the clamped cell (the official clamp is in place).
    box = torch.cat((gxy[ti] - torch.stack((gi, gj), 1).to(gxy.dtype), gxywh[ti, 2:]), 1)
    return Assignment(t[ti, 0].long(), a, gj, gi, box, anchors[a], t[ti, 1].long())
