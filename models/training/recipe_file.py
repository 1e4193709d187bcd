"""Read a training recipe from a file: a shipped one by name (``official``, ``fast``) or a
user's TOML or YAML file of hyperparameters (an official ``hyp.*.yaml`` reads as it is).

A user's file is untrusted: it is read size-bounded by the project's checked text reader, and
every problem is one :class:`RecipeError` line naming the file and the key: an unknown key, a
value of the wrong type, or one outside its range (the ranges are those a run can use; the
official hyperparameter evolution's bounds where it has one). Keys left out take the values of
the recipe named by ``base`` (default ``official``), so a file can change just a few.
"""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from emsdeploy.errors import InputError
from emsdeploy.fileio import read_text, read_toml

from .recipe import RECIPES, Recipe

__all__ = [
    "RANGES",
    "RECIPE_DIR",
    "RecipeError",
    "builtin_recipes",
    "parse_scalar",
    "parse_value",
    "read_recipe",
    "recipe_from_dict",
]

RECIPE_DIR = Path(__file__).resolve().parent / "recipes"


class RecipeError(InputError):
    """A training recipe that is unknown, unreadable or malformed (one line: file and key)."""


# (low, high, low inclusive, high inclusive) per numeric key; None: unbounded on that side.
RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "lr0": (0.0, 1.0, False, True),
    "lrf": (0.0, 1.0, False, True),
    "momentum": (0.0, 1.0, True, False),
    "weight_decay": (0.0, 0.1, True, True),
    "warmup_epochs": (0.0, None, True, True),
    "warmup_min_iters": (0, None, True, True),
    "warmup_momentum": (0.0, 1.0, True, False),
    "warmup_bias_lr": (0.0, 1.0, True, True),
    "nominal_batch": (1, None, True, True),
    "clip": (0.0, None, False, True),
    "ema_decay": (0.0, 1.0, False, False),
    "ema_tau": (0.0, None, False, True),
    "box": (0.0, None, True, True),
    "cls": (0.0, None, True, True),
    "cls_pw": (0.0, None, False, True),
    "obj": (0.0, None, True, True),
    "obj_pw": (0.0, None, False, True),
    "iou_t": (0.0, 1.0, True, True),
    "anchor_t": (1.0, None, False, True),
    "fl_gamma": (0.0, None, True, True),
    "label_smoothing": (0.0, 1.0, True, False),
    "hsv_h": (0.0, 1.0, True, True),
    "hsv_s": (0.0, 1.0, True, True),
    "hsv_v": (0.0, 1.0, True, True),
    "degrees": (0.0, 180.0, True, True),
    "translate": (0.0, 0.9, True, True),
    "scale": (0.0, 0.9, True, True),
    "shear": (0.0, 45.0, True, True),
    "perspective": (0.0, 0.001, True, True),
    "flipud": (0.0, 1.0, True, True),
    "fliplr": (0.0, 1.0, True, True),
    "mosaic": (0.0, 1.0, True, True),
    "mixup": (0.0, 0.0, True, True),  # not implemented: 0 only (the official hyp.scratch value)
    "copy_paste": (0.0, 0.0, True, True),  # needs segments, which detection data here lacks: 0 only
}
NOT_IMPLEMENTED = {"mixup", "copy_paste"}
EXTRA_KEYS = ("base",)  # the recipe whose values fill the keys a file leaves out


def builtin_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.toml"))


def _kind(annotation: str) -> tuple[str, bool]:
    """The value kind of a :class:`Recipe` field and whether it may be none, from its annotation."""
    optional = "None" in annotation
    for kind in ("tuple", "bool", "int", "float", "str"):
        if annotation.startswith(kind):
            return kind, optional
    raise TypeError(f"recipe annotation {annotation!r} has no reader")  # a new field type: teach _kind


def parse_value(where: str, key: str, value: Any) -> Any:
    """``value`` checked for ``key``'s type and range; raises :class:`RecipeError` naming ``where`` and ``key``."""
    annotations = {f.name: str(f.type) for f in fields(Recipe)}
    if key not in annotations:
        allowed = ", ".join(sorted([*annotations, *EXTRA_KEYS]))
        raise RecipeError(f"{where}: unknown key {key!r}; allowed: {allowed}")
    kind, optional = _kind(annotations[key])
    if optional and (value is None or (isinstance(value, str) and value.lower() == "none")):
        return None
    none_hint = " or none" if optional else ""
    if kind == "bool":
        if not isinstance(value, bool):
            raise RecipeError(f"{where}: {key}: expected true or false, got {value!r}")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise RecipeError(f"{where}: {key}: expected a string, got {value!r}")
        return value
    if kind == "tuple":
        if not isinstance(value, (list, tuple)) or not value or not all(_is_number(v) and v > 0 for v in value):
            raise RecipeError(f"{where}: {key}: expected a list of positive numbers{none_hint}, got {value!r}")
        return tuple(float(v) for v in value)
    if kind == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise RecipeError(f"{where}: {key}: expected an integer{none_hint}, got {value!r}")
    elif not _is_number(value):
        raise RecipeError(f"{where}: {key}: expected a number{none_hint}, got {value!r}")
    else:
        value = float(value)
    _check_range(where, key, value)
    return value


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_range(where: str, key: str, value: float) -> None:
    if key not in RANGES:
        return
    lo, hi, lo_in, hi_in = RANGES[key]
    if key in NOT_IMPLEMENTED and value != 0:
        raise RecipeError(f"{where}: {key}: {value} is not supported (only 0: emsdeploy has no {key} augmentation)")
    ok = (lo is None or value > lo or (lo_in and value == lo)) and (hi is None or value < hi or (hi_in and value == hi))
    if not ok:
        left = "unbounded" if lo is None else f"{'[' if lo_in else '('}{lo:g}"
        right = "" if hi is None else f"{hi:g}{']' if hi_in else ')'}"
        span = f"{left}, {right or 'inf)'}"
        raise RecipeError(f"{where}: {key}: {value:g} is out of range; allowed: {span}")


def recipe_from_dict(data: Any, where: str, name: str) -> Recipe:
    """A :class:`Recipe` from a file's mapping (checked key by key); ``name`` unless the file sets one."""
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: a recipe is a mapping of hyperparameters (key: value), got {type(data).__name__}")
    base_name = data.get("base", "official")
    if base_name not in RECIPES:
        raise RecipeError(f"{where}: base: {base_name!r} is not a shipped recipe; allowed: {', '.join(RECIPES)}")
    values = {str(k): parse_value(where, str(k), v) for k, v in data.items() if k != "base"}
    values.setdefault("name", name)
    try:
        return RECIPES[base_name].with_values(**values)
    except ValueError as e:  # the Recipe's own choices (optimizer, lr_schedule, obj_target, assign)
        raise RecipeError(f"{where}: {str(e).removeprefix('recipe field ')}") from None


def read_recipe(name_or_path: str | Path) -> tuple[Recipe, Path]:
    """The recipe a ``--recipe`` value means, and the file it came from.

    A shipped name (:func:`builtin_recipes`) or the path of a ``.toml``, ``.yaml`` or ``.yml`` file.
    """
    text = str(name_or_path)
    path = Path(text)
    shipped = RECIPE_DIR / f"{text}.toml"
    if path.suffix.lower() not in (".toml", ".yaml", ".yml") and "/" not in text and not path.is_file():
        if not shipped.is_file():
            raise RecipeError(
                f"unknown recipe {text!r}; shipped recipes: {', '.join(builtin_recipes())}, "
                "or the path of a .toml or .yaml file of hyperparameters (docs/training.md)"
            )
        path = shipped
    elif path.suffix.lower() not in (".toml", ".yaml", ".yml"):
        raise RecipeError(f"{path}: a recipe file ends in .toml, .yaml or .yml")
    if path.suffix.lower() == ".toml":
        data: Any = read_toml(path, error=RecipeError)  # size-bounded, UTF-8
    else:
        try:
            data = yaml.safe_load(read_text(path, error=RecipeError))
        except yaml.YAMLError as e:
            raise RecipeError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    return recipe_from_dict(data if data is not None else {}, str(path), path.stem), path


def parse_scalar(text: str) -> Any:
    """A ``--hyp KEY=VALUE`` value: ``true``/``false``, ``none``/``null``, an integer, a float
    (``1e-3`` too), a JSON list (``[4.0, 1.0]``), else the text itself (``sgd``).

    Raises:
        ValueError: an empty value, or a list that is not valid JSON.
    """
    t = text.strip()
    if not t:
        raise ValueError(text)
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null", "~"):
        return None
    if t.startswith("["):
        import json

        try:
            return json.loads(t)
        except json.JSONDecodeError:
            raise ValueError(text) from None
    for convert in (int, float):
        try:
            return convert(t)
        except ValueError:
            pass
    return t
