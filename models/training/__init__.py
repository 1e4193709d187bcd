"""Training and evaluation of EMS-YOLO: recipes (official and fast), the YOLOv5 loss, a
seeded training loop, NMS, and pycocotools mAP. Nothing here imports the rest of emsdeploy; callers pass callbacks for
progress and checkpoint saving.
"""

from .boxes import bbox_ciou, xywh_to_xyxy
from .ema import ModelEMA
from .evaluate import coco_map, evaluate, predict
from .firing import firing_rates
from .loss import LossHyp, YoloLoss
from .loss_anchor_free import AnchorFreeHyp, AnchorFreeLoss
from .nms import non_max_suppression
from .optim import OPTIMIZERS, cosine_lr, make_optimizer, make_recipe_optimizer
from .recipe import FAST, OFFICIAL, RECIPES, Recipe
from .schedule import make_schedule
from .step import StepOutput, TrainStep
from .trainer import EpochInfo, StepInfo, TrainConfig, TrainResult, TrainState, pick_device, seed_everything, train

__all__ = [
    "FAST",
    "OFFICIAL",
    "OPTIMIZERS",
    "RECIPES",
    "AnchorFreeHyp",
    "AnchorFreeLoss",
    "EpochInfo",
    "LossHyp",
    "ModelEMA",
    "Recipe",
    "StepOutput",
    "StepInfo",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "TrainStep",
    "YoloLoss",
    "bbox_ciou",
    "coco_map",
    "cosine_lr",
    "evaluate",
    "firing_rates",
    "make_optimizer",
    "make_recipe_optimizer",
    "make_schedule",
    "non_max_suppression",
    "pick_device",
    "predict",
    "seed_everything",
    "train",
    "xywh_to_xyxy",
]
