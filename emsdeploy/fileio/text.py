"""Checked reading of small text files (YAML model configs, TOML profiles and recipes) and images.

Both are read only after their size is bounded: a config is read whole, and an image's pixel
count is checked from its header before PIL decodes it (a small PNG can declare gigapixels).
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import EmsdeployError, InputError
from .limits import check_limit

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

__all__ = ["open_image", "read_text", "read_toml"]


def read_text(path: str | Path, *, error: type[Exception] = InputError) -> str:
    """The UTF-8 text of ``path``, refused above the ``text_bytes`` bound."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror})") from None
    if not path.is_file():
        raise error(f"{path}: not a file")
    check_limit("text_bytes", size, f"{path}: file size")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror})") from None


def read_toml(path: str | Path, *, error: type[EmsdeployError] = InputError) -> dict[str, Any]:
    """The TOML table of ``path`` (read by :func:`read_text`): the one TOML reader (profiles,
    training recipes); a syntax error is one line naming the file."""
    try:
        return tomllib.loads(read_text(path, error=error))
    except tomllib.TOMLDecodeError as e:
        raise error(f"{path}: not valid TOML: {e}") from None


@contextlib.contextmanager
def open_image(path: str | Path, *, error: type[EmsdeployError] = InputError) -> Iterator[Any]:
    """Open an image with PIL after checking its declared pixel count; yields the image."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, Image.DecompressionBombWarning,
            ValueError, SyntaxError) as e:  # fmt: skip
        raise error(f"{path}: not a readable image ({' '.join(str(e).split())[:160]})") from None
    with im:
        w, h = im.size
        check_limit("image_pixels", w * h, f"{path}: image of {w}x{h}")
        yield im
