"""Pairwise covers of invert and styleclip, generated from their declarations (stylekit/configs/edit.py), on a
random:16 generator, random VGG weights and a tiny CLIP folder: each row exits 0 with finite numbers and the files
it promises, or 2 naming an option."""

from pathlib import Path

import numpy as np
import pytest
from clip_tiny import make_tiny_clip_dir
from PIL import Image

from stylekit.configs.edit import InvertConfig, StyleClipConfig
from tests.cover.harness import finite_numbers, pairwise_rows, promised_files, run_row

pytestmark = pytest.mark.usefixtures("one_thread")

INVERT_ROWS = pairwise_rows(InvertConfig, fixed={"target": None, "out": None})
STYLECLIP_ROWS = pairwise_rows(StyleClipConfig, fixed={"out": None, "clip_model": None})


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("target") / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    return make_tiny_clip_dir(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.mark.parametrize("row", INVERT_ROWS, ids=[f"row{i}" for i in range(len(INVERT_ROWS))])
def test_invert_cover(row, target, tmp_path):
    out = tmp_path / "out"
    code, doc, _ = run_row("invert", InvertConfig, {**row, "target": target, "out": out}, ["--device", "cpu"])
    if code == 0:
        assert finite_numbers(doc) and doc["items"][0]["status"] == "done"
        assert not promised_files(out, ["latent.npz", "projected.png", "compare.png", "metrics.json"])


@pytest.mark.parametrize("row", STYLECLIP_ROWS, ids=[f"row{i}" for i in range(len(STYLECLIP_ROWS))])
def test_styleclip_cover(row, clip_dir, tmp_path):
    out = tmp_path / "out"
    code, doc, err = run_row("styleclip", StyleClipConfig, {**row, "clip_model": str(clip_dir), "out": out}, ["--device", "cpu"])
    if code == 2:  # the one combination the declaration refuses: an edit needs a start
        assert row["mode"] == "edit" and row["latent_seed"] is None and "--latent" in err
        return
    assert finite_numbers(doc) and len(doc["prompts"]) == len(row["prompts"])
    assert not promised_files(out, ["original.png", "grid.png", "summary.json", *[p["edited"] for p in doc["prompts"]]])
