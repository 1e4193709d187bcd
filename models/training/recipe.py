"""Training recipes as data: every hyperparameter of one training run, in one frozen record.

``OFFICIAL`` is what BICLab/EMS-YOLO's ``train.py`` does with ``data/hyps/hyp.scratch.yaml``
(field names follow that file, so an official hyp file reads straight into a :class:`Recipe`);
``FAST`` is emsdeploy's own short-run recipe (AdamW, per-step cosine, clipping), kept exactly as
it trained the shipped model. docs/training.md says what each field does and where the two differ.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from .loss import ASSIGN_RULES, OBJ_TARGETS, LossHyp, default_balance

__all__ = ["FAST", "LR_SCHEDULES", "OFFICIAL", "RECIPES", "Recipe"]

LR_SCHEDULES = ("epoch", "step")


@dataclass(frozen=True)
class Recipe:
    """One training recipe. Loss gains are as written for 3 scales, 80 classes and 640 px;
    :meth:`loss_hyp` rescales them to a model and input size as ``train.py`` does.

    ``lr_schedule``: ``"epoch"`` is YOLOv5's: a linear warmup (``np.interp``) over
    ``max(warmup_epochs · batches, warmup_min_iters)`` iterations, biases from ``warmup_bias_lr``
    down and momentum from ``warmup_momentum`` up, then a cosine stepped once per epoch from
    ``lr0`` to ``lrf · lr0``. ``"step"`` is emsdeploy's fast schedule: the learning rate factor
    rises as ``(step + 1) / warmup`` over ``warmup_epochs`` epochs (capped at half the run) and
    follows a cosine per optimiser step to ``lrf``; momentum and bias lr are not warmed up.

    ``nominal_batch``: gradients are accumulated until about this many images have been seen
    (and weight decay is scaled by ``batch · accumulate / nominal_batch``); ``None`` steps
    after every batch with the weight decay as given.
    """

    name: str = "official"
    # ---- optimiser and schedule
    optimizer: str = "sgd"  # sgd (Nesterov) | adamw
    lr0: float = 0.01
    lrf: float = 0.1
    momentum: float = 0.937  # SGD momentum / Adam beta1
    weight_decay: float = 0.0005
    warmup_epochs: float = 3.0
    warmup_min_iters: int = 1000
    warmup_momentum: float = 0.8
    warmup_bias_lr: float = 0.1
    lr_schedule: str = "epoch"
    nominal_batch: int | None = 64
    clip: float | None = None  # max gradient norm; None: no clipping
    ema: bool = True
    ema_decay: float = 0.9999
    ema_tau: float = 2000.0  # updates over which the EMA decay ramps up
    # ---- loss (hyp.scratch.yaml names)
    box: float = 0.05
    cls: float = 0.5
    cls_pw: float = 1.0
    obj: float = 1.0
    obj_pw: float = 1.0
    iou_t: float = 0.20  # read but unused, as in the official train.py
    anchor_t: float = 4.0
    fl_gamma: float = 0.0
    label_smoothing: float = 0.0
    balance: tuple[float, ...] | None = None  # objectness weight per scale, finest first; None: YOLOv5's for nl
    obj_target: str = "last"  # last (official index write) | max (YOLOv5 sort_obj_iou)
    assign: str = "official"  # official (YOLOv5 build_targets) | symmetric (nearer neighbour)
    # ---- augmentation (hyp.scratch.yaml names) and input handling
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    degrees: float = 0.0
    translate: float = 0.1
    scale: float = 0.5
    shear: float = 0.0
    perspective: float = 0.0
    flipud: float = 0.0
    fliplr: float = 0.5
    mosaic: float = 1.0
    mixup: float = 0.0
    copy_paste: float = 0.0
    letterbox: bool = True
    autoanchor: bool = True

    def __post_init__(self) -> None:
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"recipe field optimizer: {self.optimizer!r}; allowed: sgd, adamw")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"recipe field lr_schedule: {self.lr_schedule!r}; allowed: {', '.join(LR_SCHEDULES)}")
        if self.obj_target not in OBJ_TARGETS:
            raise ValueError(f"recipe field obj_target: {self.obj_target!r}; allowed: {', '.join(OBJ_TARGETS)}")
        if self.assign not in ASSIGN_RULES:
            raise ValueError(f"recipe field assign: {self.assign!r}; allowed: {', '.join(ASSIGN_RULES)}")
        if self.nominal_batch is not None and self.nominal_batch < 1:
            raise ValueError(f"recipe field nominal_batch: {self.nominal_batch}; allowed: an integer >= 1 or none")

    def loss_hyp(self, nl: int, nc: int, img_size: int) -> LossHyp:
        """The loss gains and rules for a model with ``nl`` scales and ``nc`` classes at ``img_size`` px."""
        return LossHyp(
            box=self.box,
            obj=self.obj,
            cls=self.cls,
            anchor_t=self.anchor_t,
            balance=default_balance(nl) if self.balance is None else tuple(self.balance),
            cls_pw=self.cls_pw,
            obj_pw=self.obj_pw,
            fl_gamma=self.fl_gamma,
            label_smoothing=self.label_smoothing,
            obj_target=self.obj_target,
            assign=self.assign,
        ).scaled(nl, nc, img_size)

    def with_values(self, **values: Any) -> Recipe:
        """A copy with some fields replaced (validated again)."""
        return replace(self, **values)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["balance"] = None if self.balance is None else list(self.balance)
        return d


OFFICIAL = Recipe()

FAST = Recipe(
    name="fast",
    optimizer="adamw",
    lr0=0.002,
    lrf=0.01,
    warmup_epochs=1.0,
    warmup_min_iters=0,
    lr_schedule="step",
    nominal_batch=None,
    clip=10.0,
    ema=False,
    obj_target="max",
    assign="symmetric",
    hsv_h=0.0,
    hsv_s=0.0,
    hsv_v=0.0,
    translate=0.0,
    scale=0.0,
    fliplr=0.0,
    mosaic=0.0,
    letterbox=False,
    autoanchor=False,
)

RECIPES = {r.name: r for r in (OFFICIAL, FAST)}
