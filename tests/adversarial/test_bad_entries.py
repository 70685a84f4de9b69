"""Issue 16, item 9: one bad directory entry never stops a run.

A symlink loop named *.png, a dangling symlink and a file whose name is not valid UTF-8 are skipped
and reported (the first two) or used with their exact bytes (the third) by image discovery, prepare,
train-classifier and score (with its SQLite feature cache).
"""

import json
import os
import sqlite3
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.data.images import ImageReport, list_images

RAW_NAME = b"caf\xe9-\xff.png"  # Latin-1 bytes: not UTF-8
RAW_CLASS = b"gr\xfcn"


def save(path: str | bytes, shade: int, size: int = 16) -> None:
    img = Image.new("RGB", (size, size), (shade, 255 - shade, (7 * shade) % 256))
    for x in range(size):  # some texture, so features differ between images
        img.putpixel((x, (x * shade) % size), (255, 255, 255))
    with open(path, "wb") as fh:
        img.save(fh, format="PNG")


def hostile_folder(folder: Path, shade: int = 0) -> Path:
    """Three good images, one with a non-UTF-8 name, a symlink loop and a dangling symlink (all *.png)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        save(folder / f"{i}.png", shade + 30 * i)
    save(os.path.join(os.fsencode(folder), RAW_NAME), shade + 100)
    os.symlink("loop.png", folder / "loop.png")
    os.symlink(folder / "missing-target.png", folder / "dangling.png")
    return folder


def skipped_names(skipped: list) -> dict[str, str]:
    return {Path(s["path"] if isinstance(s, dict) else s.path).name: (s["reason"] if isinstance(s, dict) else s.reason)
            for s in skipped}


def test_discovery_skips_loops_and_dangling_links_and_keeps_raw_names(tmp_path):
    folder = hostile_folder(tmp_path / "imgs")
    report = ImageReport()
    found = list_images(folder, report=report)
    assert [os.fsencode(p.name) for p in found] == [b"0.png", b"1.png", b"2.png", RAW_NAME]
    reasons = skipped_names(report.skipped)
    assert set(reasons) == {"loop.png", "dangling.png"}
    assert "symbolic links" in reasons["loop.png"] and reasons["dangling.png"] == "dangling symbolic link"
    json.dumps(report.to_dict(), ensure_ascii=False).encode("utf-8")  # printable: no lone surrogates


def test_prepare_finishes_and_writes_a_lossless_manifest(tmp_path):
    from stylekit.data.manifest import read_manifest

    src = tmp_path / "src"
    hostile_folder(src / "ink")
    hostile_folder(Path(os.fsdecode(os.path.join(os.fsencode(src), RAW_CLASS))), shade=50)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["prepare", str(src), str(out), "--size", "16", "--json", "--split", "1,0,0"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["used"] == 8 and len(doc["skipped"]) == 4
    assert set(skipped_names(doc["skipped"])) == {"loop.png", "dangling.png"}
    rows = read_manifest(out)
    assert len(rows) == 8 and all(r.path.is_file() for r in rows)
    assert os.fsdecode(RAW_CLASS) in {r.label for r in rows}
    assert RAW_CLASS in (out / "manifest.csv").read_bytes()  # the raw bytes, not a replacement character


@pytest.mark.parametrize("check", [True, False])
def test_train_classifier_data_skips_bad_entries(tmp_path, check):
    """train-classifier's data loading (class folders, with and without --check-images)."""
    from stylekit.data.datasets import StyleImageDataset, load_style_splits

    data = tmp_path / "data"
    hostile_folder(data / "ink")
    hostile_folder(data / "oil", shade=120)
    splits = load_style_splits(data, (0.5, 0.25, 0.25), seed=0, check=check, workers=1)
    items = [it for s in ("train", "val", "test") for it in splits.items[s]]
    assert len(items) == 8 and sum(os.fsencode(p).endswith(RAW_NAME) for p, _ in items) == 2
    assert sorted(Path(s.path).name for s in splits.report.skipped) == ["dangling.png", "dangling.png", "loop.png", "loop.png"]
    ds = StyleImageDataset(items, 16, train=False)
    assert all(ds[i][0].shape == (3, 16, 16) for i in range(len(ds)))


@pytest.mark.timeout(120)
def test_score_with_feature_cache_skips_bad_entries_and_caches_raw_names(tmp_path, monkeypatch):
    from stylekit.metrics import score as score_mod
    from stylekit.metrics.fid import InceptionExtractor

    pool = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())
    monkeypatch.setitem(score_mod.EXTRACTORS, "inception",
                        lambda cfg, dev: InceptionExtractor(cfg.mode, dev, model=pool, name="pool", dim=12))
    a = hostile_folder(tmp_path / "a")
    b = hostile_folder(tmp_path / "b", shade=60)
    cache = Path(os.environ["STYLEKIT_HOME"]) / "features"  # the test's own home (conftest)
    args = ["score", str(a), str(b), "--metrics", "fid", "--device", "cpu", "--workers", "0", "--json",
            "--cache"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    doc = json.loads(first.stdout)
    assert doc["a"]["used"] == 4 and set(skipped_names(doc["a"]["skipped"])) == {"loop.png", "dangling.png"}
    again = json.loads(CliRunner().invoke(app, args).stdout)
    assert [f["computed"] for f in again["features"]] == [0] * len(again["features"])  # raw-name keys hit
    (db,) = cache.glob("*.sqlite")
    with sqlite3.connect(db) as conn:
        blobs = [p for (p,) in conn.execute("SELECT path FROM features") if isinstance(p, bytes)]
    assert len(blobs) == 2 and all(p.endswith(RAW_NAME) for p in blobs)  # the exact bytes, one per set
