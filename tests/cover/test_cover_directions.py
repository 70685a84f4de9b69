"""Pairwise cover of `stylekit directions` (tests/cover/harness.py), generated from its declaration
(stylekit/configs/directions.py), on random:16 stand-ins: SeFa rows, and classifier rows on a one-epoch style model.
Every row is a valid combination, so each must exit 0 with finite numbers and the files it promises (the harness
would accept 2 naming an option; none of these rows should need it)."""

import pytest

from stylekit.configs.classifier import ClassifierConfig
from stylekit.configs.directions import DEFAULT_NUM, DirectionsConfig
from stylekit.data.toy import generate_toy_styles
from stylekit.train.classifier import train_classifier
from tests.cover.harness import finite_numbers, pairwise_rows, promised_files, run_row

pytestmark = pytest.mark.usefixtures("one_thread")

FILES = ["directions.npz", "sheet.png", "edited.npz", "directions.json"]
SEFA_ROWS = pairwise_rows(DirectionsConfig, fixed={"out": None, "method": "sefa"})
CLASSIFIER_ROWS = pairwise_rows(DirectionsConfig, fixed={"out": None, "method": "classifier", "style_model": "RUN",
                                                         "style": "pop", "num": None})  # --num is SeFa's


@pytest.fixture(scope="module")
def style_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("dir-cover") / "toy"
    generate_toy_styles(data, size=32, per_style=4, styles=3, seed=0)
    out = tmp_path_factory.mktemp("dir-cover-run") / "style"
    train_classifier(ClassifierConfig(data=data, out=out, epochs=1, batch=12, size=32, seed=0, workers=0))
    return out


def _run(row, out):
    code, doc, stderr = run_row("directions", DirectionsConfig, {**row, "out": out}, ["--device", "cpu"])
    assert code == 0, stderr
    assert finite_numbers(doc), doc
    assert not promised_files(out, FILES) and doc["standins"]
    assert len(doc["strengths"]) == len(row["strengths"])
    return doc


@pytest.mark.parametrize("row", SEFA_ROWS, ids=[f"sefa{i}" for i in range(len(SEFA_ROWS))])
def test_directions_sefa_cover(row, tmp_path):
    doc = _run(row, tmp_path / "out")
    assert len(doc["directions"]) == (row["num"] or DEFAULT_NUM) and doc["probability"] is None


@pytest.mark.parametrize("row", CLASSIFIER_ROWS, ids=[f"classifier{i}" for i in range(len(CLASSIFIER_ROWS))])
def test_directions_classifier_cover(row, style_run, tmp_path):
    doc = _run({**row, "style_model": str(style_run)}, tmp_path / "out")
    assert len(doc["directions"]) == 1 and len(doc["probability"]) == len(row["strengths"])
