"""Training and evaluation of EMS-YOLO: the YOLOv5 loss, a seeded training loop, NMS, and
pycocotools mAP. Nothing here imports the rest of emsdeploy; callers pass callbacks for
progress and checkpoint saving.
"""

from .boxes import bbox_ciou, xywh_to_xyxy
from .evaluate import coco_map, evaluate, predict
from .firing import firing_rates
from .loss import LossHyp, YoloLoss
from .loss_anchor_free import AnchorFreeHyp, AnchorFreeLoss
from .nms import non_max_suppression
from .optim import OPTIMIZERS, cosine_lr, make_optimizer
from .trainer import EpochInfo, StepInfo, TrainConfig, TrainResult, TrainState, pick_device, seed_everything, train

__all__ = [
    "OPTIMIZERS",
    "AnchorFreeHyp",
    "AnchorFreeLoss",
    "EpochInfo",
    "LossHyp",
    "StepInfo",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "YoloLoss",
    "bbox_ciou",
    "coco_map",
    "cosine_lr",
    "evaluate",
    "firing_rates",
    "make_optimizer",
    "non_max_suppression",
    "pick_device",
    "predict",
    "seed_everything",
    "train",
    "xywh_to_xyxy",
]
