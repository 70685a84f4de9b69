"""Pairwise covers of `stylekit classify` and `stylekit similar` (tests/cover/harness.py) on a tiny toy set, a
one-epoch style model, a random-init VGG19 and a tiny CLIP."""

import shutil

import pytest
from clip_tiny import make_tiny_clip_dir

from stylekit.configs.classifier import ClassifierConfig
from stylekit.configs.search import ClassifyConfig, SimilarConfig
from stylekit.data.toy import generate_toy_styles
from stylekit.train.classifier import train_classifier
from tests.cover.harness import finite_numbers, pairwise_rows, promised_files, run_row

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """3 toy styles x 4 layouts at 32 px, class folders only."""
    out = tmp_path_factory.mktemp("search-cover") / "toy"
    generate_toy_styles(out, size=32, per_style=4, styles=3, seed=0)
    shutil.rmtree(out / "content")
    (out / "manifest.csv").unlink()
    return out


@pytest.fixture(scope="module")
def style_run(toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("search-cover-run") / "style"
    train_classifier(ClassifierConfig(data=toy, out=out, epochs=1, batch=12, size=32, seed=0, workers=0))
    return out


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return make_tiny_clip_dir(tmp_path_factory.mktemp("search-cover-clip") / "clip")


CLASSIFY_ROWS = pairwise_rows(ClassifyConfig, fixed={"images": ("IMAGES",), "style_model": "RUN"})
SIMILAR_ROWS = pairwise_rows(SimilarConfig, fixed={"queries": ("Q",), "collection": ("DB",), "style_model": "RUN",
                                                   "vgg_weights": "random", "clip_model": "CLIP"})


@pytest.mark.parametrize("row", CLASSIFY_ROWS, ids=[str(i) for i in range(len(CLASSIFY_ROWS))])
def test_classify_cover(row, toy, style_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative --out lands in this row's folder
    row = {**row, "images": (str(toy),), "style_model": str(style_run)}
    code, doc, err = run_row("classify", ClassifyConfig, row, extra=["--device", "cpu"])
    if code == 2:
        return
    assert finite_numbers(doc) and len(doc["images"]) == 12 and doc["k"] == min(row["k"], 3)
    assert not promised_files(tmp_path, [str(row["out"])] if row["out"] else [])


@pytest.mark.parametrize("row", SIMILAR_ROWS, ids=[str(i) for i in range(len(SIMILAR_ROWS))])
def test_similar_cover(row, toy, style_run, clip_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    row = {**row, "queries": (str(toy / "pop" / "00000.png"),), "collection": (str(toy),), "style_model": str(style_run),
           "clip_model": str(clip_dir)}
    code, doc, err = run_row("similar", SimilarConfig, row, extra=["--device", "cpu"])
    if code == 2:
        return
    assert finite_numbers(doc) and len(doc["queries"][0]["neighbours"]) == min(row["k"], 11)
    assert (doc["standin"] is not None) == (row["embedder"] == "gram")
    if row["out"]:
        assert not promised_files(tmp_path / row["out"], ["similar.json", "contact_sheet.png"])
