"""Pairwise cover of `score`'s declaration (stylekit/configs/score.py), run tiny on CPU with the random-init
stand-ins (Inception, VGG19): each row ends in exit 0 with finite numbers and the report it promises, or exit 2
naming the options. One $STYLEKIT_HOME for the module, so the rows share the feature cache."""

import json
from pathlib import Path

import pytest

from cover.harness import finite_numbers, pairwise_rows, run_row
from stylekit.configs.score import ScoreConfig
from stylekit.data.toy import generate_toy_styles

pytestmark = pytest.mark.usefixtures("one_thread")

STAND_INS = {"inception_weights": "random", "vgg_weights": "random", "clip_weights": "random"}


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> tuple[Path, Path]:
    """A: 4 unstyled layouts, B: the same 4 layouts in one style (same file names, for --pairs)."""
    toy = tmp_path_factory.mktemp("cover-score") / "toy"
    generate_toy_styles(toy, size=32, per_style=4, styles=1, seed=0)
    styles = [p for p in toy.iterdir() if p.is_dir() and p.name != "content"]
    return toy / "content", styles[0]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("cover-score-home")
        mp.setenv("STYLEKIT_HOME", str(path))
        yield path


ROWS = pairwise_rows(ScoreConfig, fixed={"a": None, "b": None, "workers": 0, "device": "cpu", **STAND_INS})


@pytest.mark.parametrize("row", ROWS, ids=[str(i) for i in range(len(ROWS))])
def test_row(row, sets, home, tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEKIT_HOME", str(home))
    a, b = sets
    report = tmp_path / "reports" / "score.json"
    code, doc, stderr = run_row("score", ScoreConfig, {**row, "a": a, "b": b}, extra=["--out", str(report)])
    if code == 2:
        assert not report.parent.exists(), "a refused row leaves no --out behind"
        return
    assert finite_numbers(doc["metrics"]), doc["metrics"]
    assert list(doc["metrics"]) == [name for name in row["metrics"].split(",")]
    assert json.loads(report.read_text())["metrics"] == doc["metrics"]
    assert doc["stand_ins"] and all(s.endswith(" random") for s in doc["stand_ins"])
