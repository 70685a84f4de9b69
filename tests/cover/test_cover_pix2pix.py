"""train-pix2pix: an all-pairs cover of its declared options, run tiny on CPU (tests/cover/harness.py)."""

from pathlib import Path

import pytest

from stylekit.configs.pix2pix import Pix2PixConfig
from stylekit.data.toy import generate_toy_styles
from tests.cover.harness import finite_numbers, pairwise_rows, promised_files, run_row

pytestmark = pytest.mark.usefixtures("one_thread")
ROWS = pairwise_rows(Pix2PixConfig, fixed={"data": None, "out": None})


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cover-p2p") / "toy"
    generate_toy_styles(out, size=32, per_style=4, styles=2, seed=0)
    return out


@pytest.mark.parametrize("row", ROWS, ids=[f"row{i}" for i in range(len(ROWS))])
def test_pix2pix_option_pairs(toy, tmp_path, row):
    out = tmp_path / "run"
    code, doc, stderr = run_row("train-pix2pix", Pix2PixConfig, row | {"data": toy, "out": out}, ["--device", "cpu"])
    if code == 2:
        assert not (out / "checkpoints").exists(), "a refused run must not start training"
        return
    assert finite_numbers(doc) and doc["steps"] >= 1
    assert not promised_files(out, ["config.json", "metrics.jsonl", "generator.safetensors", "generator.json"])
