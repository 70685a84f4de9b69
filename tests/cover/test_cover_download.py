"""`stylekit download`: an all-pairs cover of its declaration (toy-styles, offline), and its --help examples
(Kaggle and image hosts replaced by a fake client and a local server)."""

import json
from pathlib import Path

import pytest

from stylekit.configs.download import DownloadConfig
from stylekit.data.sources import kaggle
from tests.cover.examples import help_examples, run_example, shrink
from tests.cover.harness import finite_numbers, pairwise_rows, promised_files, run_row
from tests.test_download import FakeKaggle, _mj_dump, _png, _wikiart_members
from tests.test_weights import LocalServer

ROWS = pairwise_rows(DownloadConfig, fixed={"name": "toy-styles", "out": Path("toy")})


def test_the_cover_varies_the_toy_options():
    assert len(ROWS) >= 4
    for name in ("size", "per_style", "styles", "seed", "fresh"):
        assert len({row[name] for row in ROWS}) == 2, name


@pytest.mark.parametrize("row", ROWS, ids=[f"row{i}" for i in range(len(ROWS))])
def test_row(row, tmp_path):
    out = tmp_path / "toy"
    code, doc, stderr = run_row("download", DownloadConfig, row | {"out": out})
    assert code == 0, stderr  # every value the cover tries is in bounds
    assert finite_numbers(doc) and doc["skipped"] is False
    assert not promised_files(out, [".stylekit-download.json", "manifest.csv", "content"])
    assert len(list(out.rglob("*.png"))) == (row["styles"] + 1) * row["per_style"]
    again, redo, _ = run_row("download", DownloadConfig, row | {"out": out, "fresh": False})
    assert again == 0 and redo["skipped"] is True  # the rerun rule: up to date, and said so


def test_help_examples_run_offline_with_stand_ins(tmp_path, monkeypatch):
    server = LocalServer()
    try:
        names = [f"p{i}.png" for i in range(4)]
        for name in names:
            server.files[f"/att/{name}"] = _png()
        fakes = {"steubk/wikiart": FakeKaggle(_wikiart_members(per=1)),
                 "succinctlyai/midjourney-texttoimage": FakeKaggle({"midjourney/a.json": _mj_dump(server.base, names)})}

        class Kaggle:  # each data set its own archive
            def dataset_download_files(self, dataset, **kwargs):
                return fakes[dataset].dataset_download_files(dataset, **kwargs)

        monkeypatch.setattr(kaggle, "kaggle_api", Kaggle)
        monkeypatch.delenv("STYLEKIT_OFFLINE")  # the fake client and the local server stand in for the network
        monkeypatch.setenv("STYLEKIT_MIRROR", server.url("/mirror"))
        server.files["/mirror/vgg.pth"] = b"bytes standing in for the weights"
        monkeypatch.chdir(tmp_path)
        examples = help_examples("download")
        assert len(examples) >= 5
        for words in examples:
            code, output = run_example(shrink(words, {"--size": "16", "--per-style": "1", "--images": "3"}) + ["--json"])
            assert code == 0, f"{' '.join(words)}\n{output}"
        assert json.loads((Path("data/mj") / "images-report.json").read_text())["fetched"] == 3
        assert json.loads((Path("data/wikiart") / "download-summary.json").read_text())["styles"] == 2
    finally:
        server.close()
