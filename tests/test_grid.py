"""Labelled grids: cells upscaled (nearest) to be seen, column headers and row labels drawn."""

import numpy as np
import pytest
import torch
from PIL import Image

from stylekit.data.grid import BACKGROUND, MIN_CELL, labelled_grid, save_labelled_grid, upscale_factor


def _ink(img: Image.Image, box: tuple[int, int, int, int]) -> int:
    """Pixels in `box` that differ from the background."""
    arr = np.asarray(img.crop(box).convert("RGB"), dtype=np.int16)
    return int((np.abs(arr - np.array(BACKGROUND)).sum(-1) > 60).sum())


def test_small_cells_are_upscaled_nearest_by_a_whole_factor():
    assert upscale_factor(32) == 4 and upscale_factor(128) == 1 and upscale_factor(100) == 2
    cell = torch.zeros(3, 32, 32)
    cell[0, 5, 7] = 1.0  # one red pixel
    sheet = labelled_grid([[cell]], min_cell=MIN_CELL)
    arr = np.asarray(sheet)
    red = np.argwhere((arr[..., 0] == 255) & (arr[..., 1] == 0))
    assert len(red) == 16  # the pixel became a crisp 4x4 block
    assert red[:, 0].max() - red[:, 0].min() == 3 and red[:, 1].max() - red[:, 1].min() == 3
    assert min(sheet.size) >= MIN_CELL


def test_headers_and_row_labels_are_drawn(tmp_path):
    rows = [[torch.rand(3, 16, 16) for _ in range(3)] for _ in range(2)]
    plain = labelled_grid(rows)
    sheet = labelled_grid(rows, ["base", "fine-tuned", "blended"], ["seed 0", "seed 1"])
    assert sheet.width > plain.width and sheet.height > plain.height  # a label column and a header band
    header_h = sheet.height - plain.height
    label_w = sheet.width - plain.width
    assert header_h >= 10 and label_w >= 20
    for j in range(3):  # every column has text above it
        left = label_w + 4 + j * (MIN_CELL + 4)
        assert _ink(sheet, (left, 0, left + MIN_CELL, header_h)) > 20
    assert _ink(sheet, (0, header_h, label_w, header_h + MIN_CELL)) > 20  # "seed 0" beside the first row
    path = save_labelled_grid(tmp_path / "g.png", rows, ["a", "b", "c"])
    assert Image.open(path).size == labelled_grid(rows, ["a", "b", "c"]).size


def test_long_labels_are_shortened_and_empty_grid_refused():
    sheet = labelled_grid([[torch.rand(3, 8, 8)]], ["a very long column title that cannot fit in one cell"])
    assert sheet.width == labelled_grid([[torch.rand(3, 8, 8)]]).width  # the header never widens the sheet
    with pytest.raises(ValueError):
        labelled_grid([[None]])
