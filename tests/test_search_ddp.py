"""`classify` and `similar` under torchrun: 2 CPU processes (gloo) give what one process gives.

The torchrun jobs run under tests/device_guard.py, so they also prove that the sharded paths create no
device-less tensor. Every job uses `--batch 1`: each image goes through the network alone in both runs,
so the features (logits, embeddings) are one computation whatever the shard; what the ranks change is
the search's blocks of query rows, whose bound is derived below.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from device_guard import guard_env, run_guarded
from numerics import summation

from stylekit.data.toy import generate_toy_styles
from stylekit.metrics.style import export_style_model
from stylekit.nets.style_embedding import StyleNet, StyleNetConfig

CLASSES = ["checks", "pop", "stripes"]
EMBED_DIM = 8
ROUNDED = 1e-6  # classify and similar report 6 decimals: two values t apart are reported at most t + 1e-6 apart

# Each rank runs the CLI jobs of one launch and writes its own report (device_guard.run_jobs), so a test
# can read what every rank printed and with which code it ended (run_guarded returns rank 0's only, and
# requires exit 0).
PER_RANK = r'''
import faulthandler, json, os, sys
from pathlib import Path
from device_guard import run_jobs
faulthandler.dump_traceback_later(120, exit=True)  # a rank left waiting in a collective: its stack, then the end
jobs, out = sys.argv[1:3]
Path(out, f"rank{os.environ['RANK']}.json").write_text(json.dumps(run_jobs(json.loads(Path(jobs).read_text()))))
'''


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    """3 toy styles x 4 images at 16 px (the collection), 2 other images of those styles (queries outside
    the collection), an undecodable file, and a random-init small-cnn style model of 16 px."""
    toy = tmp_path / "toy"
    generate_toy_styles(toy, size=16, per_style=4, styles=3, seed=0)
    shutil.rmtree(toy / "content")
    (toy / "manifest.csv").unlink()
    other = tmp_path / "other"
    generate_toy_styles(other, size=16, per_style=5, styles=3, seed=1)
    extra = tmp_path / "extra"
    for style in ("pop", "checks"):
        (extra / style).mkdir(parents=True)
        shutil.copy(other / style / "00004.png", extra / style / "e.png")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.png").write_bytes(b"not a png")
    torch.manual_seed(0)
    model = export_style_model(StyleNet(StyleNetConfig("small-cnn", len(CLASSES), EMBED_DIM)), tmp_path / "model",
                               {"size": 16, "classes": CLASSES})
    return {"toy": toy, "extra": extra, "broken": broken, "model": model}


def _classify(d: dict[str, Path], *extra: str) -> list[str]:
    return ["classify", str(d["toy"]), str(d["broken"]), "--style-model", str(d["model"]), "-k", "2", "--batch", "1",
            "--device", "cpu", "--json", *extra]


def _similar_across_blocks(d: dict[str, Path], *extra: str) -> list[str]:
    """4 queries: rank 0's block (2 outside the collection) excludes nothing, rank 1's (2 of its images)
    excludes each query itself; -k 20 is capped at the 11 other images for both blocks alike."""
    queries = [d["extra"] / "pop" / "e.png", d["extra"] / "checks" / "e.png", d["toy"] / "pop" / "00000.png",
               d["toy"] / "checks" / "00001.png"]
    return ["similar", *map(str, queries), "--in", str(d["toy"]), "--style-model", str(d["model"]), "-k", "20",
            "--batch", "1", "--device", "cpu", "--json", *extra]


def _similar_all_vs_all(d: dict[str, Path], *extra: str) -> list[str]:
    """Every collection image against the others, from class folders: retrieval metrics too."""
    return ["similar", str(d["toy"]), "--in", str(d["toy"]), "--style-model", str(d["model"]), "-k", "3",
            "--batch", "1", "--device", "cpu", "--json", *extra]


def _same_ranking(one: list[tuple[str, float]], two: list[tuple[str, float]], tol: float) -> None:
    """The same names with values within `tol`, ranked alike; names whose values lie within the round-off
    of each other may swap, and one within 2 tol of the last value may fall off the end."""
    assert len(one) == len(two)
    assert all(abs(a[1] - b[1]) <= tol for a, b in zip(one, two, strict=True)), (one, two)
    a, b = dict(one), dict(two)
    assert all(abs(a[n] - b[n]) <= tol for n in a.keys() & b.keys()), (one, two)
    assert all(a[n] - one[-1][1] <= 2 * tol for n in a.keys() - b.keys()), (one, two)
    assert all(b[n] - two[-1][1] <= 2 * tol for n in b.keys() - a.keys()), (one, two)


def _same_neighbours(one: dict[str, Any], two: dict[str, Any]) -> None:
    # A cosine of unit vectors is a sum of EMBED_DIM products whose magnitudes sum to at most 1
    # (Cauchy-Schwarz): another blocking of the query rows sums them in another order, at most
    # EMBED_DIM * eps apart; the normalised rows themselves are the same element-wise computation.
    tol = summation(EMBED_DIM) + ROUNDED
    assert [q["path"] for q in one["queries"]] == [q["path"] for q in two["queries"]]
    assert one["k"] == two["k"]
    for q1, q2 in zip(one["queries"], two["queries"], strict=True):
        _same_ranking([(n["path"], n["score"]) for n in q1["neighbours"]],
                      [(n["path"], n["score"]) for n in q2["neighbours"]], tol)


def _same_styles(one: dict[str, Any], two: dict[str, Any]) -> None:
    # A softmax over the same logits, normalised by a sum of len(CLASSES) terms: relative error at most
    # len(CLASSES) * eps of a probability <= 1.
    tol = summation(len(CLASSES)) + ROUNDED
    assert [r["path"] for r in one["images"]] == [r["path"] for r in two["images"]]
    assert one["skipped"] == two["skipped"] and len(one["skipped"]) == 1
    for r1, r2 in zip(one["images"], two["images"], strict=True):
        _same_ranking([(t["style"], t["probability"]) for t in r1["top"]],
                      [(t["style"], t["probability"]) for t in r2["top"]], tol)


def _launch_per_rank(tmp_path: Path, jobs: list[list[str]], nproc: int = 2) -> list[list[dict[str, Any]]]:
    """Every rank's report of `jobs` run under torchrun (exit codes not required to be 0)."""
    out = tmp_path / "ranks"
    out.mkdir()
    script, jobs_file = tmp_path / "per_rank.py", tmp_path / "per_rank_jobs.json"
    script.write_text(PER_RANK)
    jobs_file.write_text(json.dumps(jobs))
    torchrun = Path(sys.executable).parent / "torchrun"
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", str(nproc), str(script), str(jobs_file), str(out)],
                          env=guard_env(), capture_output=True, text=True, timeout=300)
    reports = [out / f"rank{r}.json" for r in range(nproc)]
    assert all(r.exists() for r in reports), proc.stderr[-3000:]
    return [json.loads(r.read_text()) for r in reports]


@pytest.mark.slow
@pytest.mark.numerics
def test_two_ranks_classify_and_search_like_one_process(data, tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEKIT_HOME", str(tmp_path / "home"))
    two, one = tmp_path / "two", tmp_path / "one"
    jobs2 = [_classify(data, "--out", str(two / "styles.csv")), _similar_across_blocks(data, "--out", str(two / "found")),
             _similar_all_vs_all(data)]
    c2, s2, a2 = (json.loads(r["stdout"]) for r in run_guarded(tmp_path, jobs2, nproc=2))  # one JSON document each
    # One process, computing its own features (--no-cache), then over the cache the two ranks wrote.
    jobs1 = [_classify(data, "--out", str(one / "styles.csv"), "--no-cache"),
             _similar_across_blocks(data, "--out", str(one / "found"), "--no-cache"), _similar_all_vs_all(data, "--no-cache"),
             _classify(data), _similar_across_blocks(data)]
    c1, s1, a1, c_cached, s_cached = (json.loads(r["stdout"]) for r in run_guarded(tmp_path, jobs1, nproc=1))

    _same_styles(c1, c2)
    _same_styles(c1, c_cached)
    for one_doc, two_doc in ((s1, s2), (a1, a2), (s1, s_cached)):
        _same_neighbours(one_doc, two_doc)
    assert s2["k"] == 11 and a1["metrics"] == a2["metrics"] and a2["metrics"] is not None

    # Each rank's share, counted: the 13 classified files (the undecodable one too) and the 12 collection
    # images in contiguous blocks; the 2 queries outside the collection (its 2 are cached by then); the
    # query rows each rank searched.
    assert c2["features"]["computed_per_rank"] == [6, 7] and c2["features"]["computed"] == 13
    assert s2["features"]["collection"]["computed_per_rank"] == [6, 6]
    assert s2["features"]["queries"]["computed_per_rank"] == [1, 1] and s2["features"]["queries"]["hits"] == 2
    assert s2["searched_per_rank"] == [2, 2] and a2["searched_per_rank"] == [6, 6]
    assert "computed_per_rank" not in c1["features"] and s1["searched_per_rank"] == []
    # The cache the two ranks wrote serves a later single process: nothing computed.
    assert c_cached["features"]["computed"] == 0 and c_cached["features"]["hits"] == 13
    assert s_cached["features"]["collection"]["computed"] == 0 and s_cached["features"]["queries"]["computed"] == 0

    # The same files, written by rank 0 alone: the CSV rows, similar.json (the --json document) and the sheet.
    with (one / "styles.csv").open() as f1, (two / "styles.csv").open() as f2:
        rows1, rows2 = list(csv.reader(f1)), list(csv.reader(f2))
    assert rows1[0] == rows2[0] and [r[0] for r in rows1] == [r[0] for r in rows2] and len(rows2) == 13
    assert sorted(os.listdir(one)) == sorted(os.listdir(two)) == ["found", "styles.csv"]
    assert sorted(os.listdir(one / "found")) == sorted(os.listdir(two / "found"))
    saved = json.loads((two / "found" / "similar.json").read_text())
    assert saved["queries"] == s2["queries"] and saved["searched_per_rank"] == [2, 2]
    from PIL import Image

    assert Image.open(two / "found" / "contact_sheet.png").size == Image.open(one / "found" / "contact_sheet.png").size


@pytest.mark.slow
def test_two_ranks_print_once_and_end_alike_on_busy_and_missing_model(data, tmp_path, monkeypatch):
    from stylekit.io.rundir import DirLock

    monkeypatch.setenv("STYLEKIT_HOME", str(tmp_path / "home"))
    busy = tmp_path / "busy"
    busy.mkdir()
    jobs = [_classify(data), _similar_all_vs_all(data, "--out", str(busy)),
            _classify(data, "--style-model", str(tmp_path / "no-model"), "--out", str(tmp_path / "o" / "s.csv"))]
    lock = DirLock(busy)
    lock.acquire()  # another run holds --out
    try:
        rank0, rank1 = _launch_per_rank(tmp_path, jobs)
    finally:
        lock.release()
    ok0, busy0, missing0 = rank0
    ok1, busy1, missing1 = rank1
    assert ok0["exit_code"] == ok1["exit_code"] == 0
    assert len(json.loads(ok0["stdout"])["images"]) == 12 and ok1["stdout"] == ""  # one document, from rank 0
    # Rank 0 meets the lock; rank 1 never takes it, and ends with rank 0's code.
    assert busy0["exit_code"] == busy1["exit_code"] == 75 and "in use" in busy0["output"]
    assert busy1["stdout"] == "" and not (busy / "similar.json").exists()
    # A check that fails before any work (no style model: exit 3) ends both ranks, leaving nothing behind.
    assert missing0["exit_code"] == missing1["exit_code"] == 3 and "train-classifier" in missing0["output"]
    assert not (tmp_path / "o").exists()
