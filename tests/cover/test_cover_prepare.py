"""`stylekit prepare`: an all-pairs cover of its declaration, and its --help examples, run tiny."""

from pathlib import Path

import pytest

from stylekit.configs.prepare import PrepareConfig
from stylekit.data.toy import generate_toy_styles
from tests.cover.examples import help_examples, run_example, shrink
from tests.cover.harness import finite_numbers, pairwise_rows, promised_files, run_row

ROWS = pairwise_rows(PrepareConfig, fixed={"src": Path("toy"), "out": Path("out")})


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("cover-prepare") / "toy"
    generate_toy_styles(root, size=24, per_style=3, styles=2, seed=0)
    return root


def test_the_cover_varies_every_choice():
    assert len(ROWS) >= 6
    for name in ("crop", "format", "resize_filter", "dedupe", "exclude", "split", "wide_aspect"):
        assert len({str(row[name]) for row in ROWS}) >= 2, name


@pytest.mark.parametrize("row", ROWS, ids=[f"row{i}" for i in range(len(ROWS))])
def test_row(row, toy, tmp_path):
    out = tmp_path / "out"
    code, doc, stderr = run_row("prepare", PrepareConfig, row | {"src": toy, "out": out})
    if code == 2:
        assert not out.exists(), stderr
        return
    assert finite_numbers(doc) and doc["used"] > 0
    zipped = str(row["format"]) == "stylegan-zip"
    assert not promised_files(out, ["manifest.csv", "report.json", *(["dataset.zip"] if zipped else [])])
    assert ("content" in doc["labels"]) == ("content" not in row["exclude"])


def test_help_examples_run_on_toy_styles(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    generate_toy_styles(Path("data/toy"), size=24, per_style=3, styles=2, seed=0)
    examples = help_examples("prepare")
    assert len(examples) >= 4
    for words in examples:
        code, output = run_example(shrink(words, {"--size": "16", "--max-images": "6"}))
        assert code == 0, f"{' '.join(words)}\n{output}"
