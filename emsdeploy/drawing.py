"""Detections drawn for a person to read: boxes on the original image, at its size, with labels
that stay legible and inside the picture.

The label font scales with the image (a scalable font, :data:`MIN_FONT` pixels at least, so a
128×128 scene still reads). A label sits on a filled tab above its box so that it does not
cover the object, below the box when the box touches the top, inside it when neither fits, and
is shifted left so that it never leaves the picture.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

__all__ = ["MIN_FONT", "PALETTE", "draw_detections", "font_size"]

MIN_FONT = 10  # pixels: the smallest label text, for small images
PALETTE = [(230, 25, 75), (0, 130, 200), (60, 180, 75), (245, 130, 48), (145, 30, 180), (70, 240, 240)]


def font_size(size: tuple[int, int]) -> int:
    """Label text height for an image of ``size = (W, H)``: 1/30 of its shorter side, at least :data:`MIN_FONT`."""
    return max(MIN_FONT, round(min(size) / 30))


def _font(px: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=px)  # scalable with FreeType (Pillow >= 10.1)
    except (TypeError, OSError):
        return ImageFont.load_default()


def draw_detections(image: Image.Image, detections: Sequence[dict]) -> Image.Image:
    """A copy of ``image`` (RGB, same size) with each detection's box (in its pixels) and a
    ``name score`` label."""
    canvas = image.convert("RGB")
    W, H = canvas.size
    font = _font(font_size(canvas.size))
    line = max(1, round(min(W, H) / 240))
    draw = ImageDraw.Draw(canvas)
    for d in detections:
        color = PALETTE[d["class"] % len(PALETTE)]
        x1, y1, x2, y2 = d["box"]
        draw.rectangle([x1, y1, x2, y2], outline=color, width=line)
        text = f"{d['name']} {d['score']:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left + 2 * line, bottom - top + 2 * line
        if y1 - th >= 0:
            ty = y1 - th  # above the box
        elif y2 + th <= H:
            ty = y2  # below it
        else:
            ty = y1  # inside, at its top
        tx = min(max(0, x1), W - tw)
        draw.rectangle([tx, ty, tx + tw - 1, ty + th - 1], fill=color)
        draw.text((tx + line - left, ty + line - top), text, fill=(255, 255, 255), font=font)
    return canvas
