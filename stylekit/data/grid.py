"""Labelled image grids a person can read: column headers, row labels, cells big enough to see.

`labelled_grid(rows, columns=..., row_labels=...)` tiles images (tensors [3,H,W] in [0,1] or PIL
images) into a white sheet. Cells smaller than `min_cell` pixels are upscaled by a whole factor with
nearest-neighbour (a 32 px sample stays crisp pixels, not a blur); headers and labels are drawn with
PIL's default font, so no font file is needed. Used for pix2pix samples (structure | refs | output |
target), the blend-layers preview (base | fine-tuned | blended) and the classifier's neighbours.png
(one row per style).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Union

from PIL import Image, ImageDraw, ImageFont

from stylekit.data.images import mark_composite, tensor_to_pil
from stylekit.io.atomic import save_image_atomic

if TYPE_CHECKING:
    import torch

Cell = Union["torch.Tensor", Image.Image, None]  # None leaves the cell blank

MIN_CELL = 128  # pixels: smaller samples are upscaled (nearest) by a whole factor to at least this
PAD = 4
TEXT_PAD = 4
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=14)  # Pillow >= 10.1 with FreeType: a scalable default
    except TypeError:  # older Pillow: the fixed bitmap font
        return ImageFont.load_default()


def _to_pil(cell: Cell) -> Image.Image | None:
    if cell is None or isinstance(cell, Image.Image):
        return cell.convert("RGB") if cell is not None else None

    return tensor_to_pil(cell.detach().float().cpu())


def upscale_factor(size: int, min_cell: int = MIN_CELL) -> int:
    """Whole nearest-neighbour factor that brings `size` pixels to at least `min_cell` (1 when already big)."""
    return max(1, math.ceil(min_cell / max(1, size)))


def _text_size(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> str:
    """`text`, shortened with an ellipsis until it fits `width` pixels."""
    if _text_size(draw, text, font)[0] <= width:
        return text
    while len(text) > 1 and _text_size(draw, text + "...", font)[0] > width:
        text = text[:-1]
    return text + "..."


def labelled_grid(rows: Sequence[Sequence[Cell]], columns: Sequence[str] | None = None,
                  row_labels: Sequence[str] | None = None, min_cell: int = MIN_CELL) -> Image.Image:
    """A white sheet with one header band (`columns`), a label per row, and the cells upscaled to be seen.

    Every cell is scaled by the same whole factor (from the largest cell), so relative sizes stay true.
    """
    pil_rows = [[_to_pil(c) for c in row] for row in rows]
    cells = [c for row in pil_rows for c in row if c is not None]
    if not cells:
        raise ValueError("labelled_grid needs at least one image")
    ncol = max(len(row) for row in pil_rows)
    factor = upscale_factor(max(max(c.size) for c in cells), min_cell)
    cell_w = max(c.width for c in cells) * factor
    cell_h = max(c.height for c in cells) * factor
    font = _font()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = _text_size(probe, "Ag|", font)[1] + 2 * TEXT_PAD
    header_h = line_h if columns else 0
    label_w = 0
    if row_labels:
        label_w = min(max(_text_size(probe, t, font)[0] for t in row_labels) + 2 * TEXT_PAD, 2 * cell_w)
    width = label_w + ncol * (cell_w + PAD) + PAD
    height = header_h + len(pil_rows) * (cell_h + PAD) + PAD
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for j, title in enumerate(columns or []):
        text = _fit(draw, title, cell_w - 2 * TEXT_PAD, font)
        tw = _text_size(draw, text, font)[0]
        draw.text((label_w + PAD + j * (cell_w + PAD) + (cell_w - tw) // 2, TEXT_PAD), text, fill=INK, font=font)
    for i, row in enumerate(pil_rows):
        top = header_h + PAD + i * (cell_h + PAD)
        if row_labels and i < len(row_labels):
            text = _fit(draw, row_labels[i], label_w - 2 * TEXT_PAD, font)
            draw.text((TEXT_PAD, top + (cell_h - line_h) // 2 + TEXT_PAD), text, fill=INK, font=font)
        for j, cell in enumerate(row):
            if cell is None:
                continue
            img = cell.resize((cell.width * factor, cell.height * factor), Image.Resampling.NEAREST) if factor > 1 else cell
            left = label_w + PAD + j * (cell_w + PAD)
            sheet.paste(img, (left + (cell_w - img.width) // 2, top + (cell_h - img.height) // 2))
    return sheet


def save_labelled_grid(path: str | os.PathLike[str], rows: Sequence[Sequence[Cell]], columns: Sequence[str] | None = None,
                       row_labels: Sequence[str] | None = None, min_cell: int = MIN_CELL) -> Path:
    """`labelled_grid(...)` written atomically as a PNG."""

    return save_image_atomic(path, labelled_grid(rows, columns, row_labels, min_cell))


def save_grid(images: list[torch.Tensor], path: str | os.PathLike[str], nrow: int | None = None, padding: int = 2) -> Path:
    """Tile [3,H,W] tensors in [0,1] into one PNG (atomically written). Cells under 128 px are enlarged
    by a whole factor, nearest-neighbour, so samples of tiny networks can be seen."""

    import torch
    from torchvision.utils import make_grid


    if not images:
        raise ValueError("save_grid needs at least one image")
    nrow = nrow or math.ceil(math.sqrt(len(images)))
    batch = torch.stack([i.detach().float().cpu() for i in images])
    factor = upscale_factor(max(batch.shape[-2:]))
    if factor > 1:
        batch = torch.nn.functional.interpolate(batch, scale_factor=factor, mode="nearest")
    grid = make_grid(batch, nrow=nrow, padding=padding, pad_value=1.0)
    saved = save_image_atomic(path, tensor_to_pil(grid))
    mark_composite(saved)
    return saved
