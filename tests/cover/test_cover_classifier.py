"""Pairwise cover of `train-classifier`'s declaration (stylekit/configs/classifier.py), run tiny on CPU: each row
ends in exit 0 with finite numbers and the promised files, or exit 2 naming the options."""

from pathlib import Path

import pytest

from cover.harness import finite_numbers, pairwise_rows, promised_files, run_row
from stylekit.configs.classifier import ClassifierConfig
from stylekit.data.toy import generate_toy_styles

pytestmark = pytest.mark.usefixtures("one_thread")

PROMISED = ["config.json", "metrics.jsonl", "test_metrics.json", "style_model.json", "style_model.safetensors"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cover-classifier") / "toy"
    generate_toy_styles(out, size=32, per_style=12, styles=3, seed=0)
    return out


ROWS = pairwise_rows(ClassifierConfig, fixed={"data": None, "out": None, "workers": 0, "device": "cpu"})


@pytest.mark.parametrize("row", ROWS, ids=[str(i) for i in range(len(ROWS))])
def test_row(row, toy, tmp_path):
    out = tmp_path / "run"
    code, doc, stderr = run_row("train-classifier", ClassifierConfig, {**row, "data": toy, "out": out})
    if code == 2:
        assert not out.exists(), "a refused row leaves no --out behind"
        return
    assert finite_numbers(doc), doc
    assert doc["epochs"] == row["epochs"] and doc["steps"] >= 1
    assert not promised_files(out, PROMISED)
    assert ("--backbone-weights random" in doc["stand_ins"]) == (row.get("weights") == "random")
