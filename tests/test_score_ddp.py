"""score, stats and finetune-stylegan --metrics under torchrun: 2 gloo processes give one process's numbers,
each rank computes its share (counted, not timed), and an error on one rank ends every rank with its exit code.

Every launch runs its jobs guarded (tests/device_guard.py: a tensor built without its device is unusable)
with tiny feature models in score's EXTRACTORS table (`install_tiny_extractors`, called in every process).

Tolerance: the inputs are sized so that each rank's block is whole batches of the one-process run (12 images
in batches of 3 or 6, 20 samples in batches of 10), so every feature row and every PPL distance is computed
from the same batch, in the same kernel shapes, as in one process; the gathered arrays are in the one-process
order, so the metrics are computed from the same numbers. The one sum whose order changes is Gram's (each
rank's float64 sum, then the ranks' sums added). TOL = K eps32 with K = the tiny feature nets' longest
reduction bounds both with room (tests/numerics.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from device_guard import run_guarded
from numerics import summation
from PIL import Image
from test_score import make_images

from stylekit.errors import BadInput

pytestmark = [pytest.mark.slow, pytest.mark.numerics]

TOL = summation(3 * 9 * 9)  # the tiny Inception's 9x9 convolution over 3 channels: its longest reduction
N_SET = 12  # images per set: blocks of 6 per rank = 2 batches of 3
METRICS_AB = "fid,kid,pr,style,gram"
METRICS_NET = "fid,kid,is,pr,ppl2_wend"
SNAP_NUM_GEN = 20  # the trainer's score batch is 32: 2 ranks x 10 = the one-process run at --batch 10


def _refuse_black(embed):
    def run(batch: torch.Tensor) -> torch.Tensor:
        if bool((batch.flatten(1).amax(1) == 0).any()):
            raise BadInput("a black image reached the style model")
        return embed(batch)

    return run


def install_tiny_extractors() -> None:
    """Tiny feature models for every kind score reads (the style one refuses black images: an input that
    fails during the work, on the rank whose block holds it)."""
    from test_metric_registry import _colour_stats, tiny_extractors

    from stylekit.metrics import score as score_mod
    from stylekit.metrics.features import EmbedderExtractor

    score_mod.EXTRACTORS.update(tiny_extractors())
    score_mod.EXTRACTORS["style"] = lambda cfg, dev: EmbedderExtractor("tiny-style", _refuse_black(_colour_stats), 9, size=32)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, random_vgg19_file):
    from test_finetune import make_tiny_setup

    from stylekit.nets.stylegan2.load import save_network
    from stylekit.nets.stylegan2.tiny import tiny_generator

    root = tmp_path_factory.mktemp("ddp-score")
    make_images(root / "a", "stripes", N_SET, size=32, seed=1)
    make_images(root / "b", "blobs", N_SET, size=32, seed=7)
    shutil.copytree(root / "b", root / "poisoned")
    Image.new("RGB", (32, 32)).save(root / "poisoned" / "zz_black.png")  # last: in rank 1's block
    net = save_network(root / "tiny.safetensors", G=tiny_generator(32, seed=0))
    data, src = make_tiny_setup(root / "sg")
    return {"a": root / "a", "b": root / "b", "poisoned": root / "poisoned", "net": net, "vgg": random_vgg19_file,
            "data": data, "src": src}


def _reading_jobs(d: dict, out: Path, tag: str) -> list[list[str]]:
    common = ["--device", "cpu", "--workers", "0", "--json"]
    return [
        ["stats", str(d["a"]), "--name", f"a{tag}", "--batch", "3", *common],
        ["score", str(d["a"]), str(d["b"]), "--metrics", METRICS_AB, "--vgg-weights", str(d["vgg"]), "--size", "32",
         "--batch", "3", "--kid-subsets", "10", "--out", str(out / "report.json"), *common],
        ["score", "--network", str(d["net"]), str(d["b"]), "--num-gen", str(N_SET), "--batch", "6", "--metrics", METRICS_NET,
         "--seed", "1", "--kid-subsets", "10", *common],
        ["blend-layers", "--base", str(d["net"]), "--finetuned", str(d["net"]), "--swap-res", "8,16", "--out", str(out / "blend"),
         "--preview-seeds", "0-1", "--metrics", "fid", "--ref", str(d["b"]), "--num-gen", str(N_SET), "--device", "cpu", "--json"],
        ["score", str(d["a"]), str(d["poisoned"]), "--metrics", "style", "--batch", "3", *common],
    ]


def _launch(tmp_path: Path, monkeypatch, jobs: list[list[str]], nproc: int, home: str) -> list[dict]:
    monkeypatch.setenv("STYLEKIT_HOME", str(tmp_path / home))  # each launch its own feature cache: every feature computed
    report = run_guarded(tmp_path, jobs, nproc=nproc, setup="test_score_ddp:install_tiny_extractors", check=False)
    for r in report[:-1]:
        assert r["exit_code"] == 0, (r["argv"][0], r["output"][-1500:], r["error"][-3000:])
    return report


def _close(two: float, one: float) -> None:
    assert two == pytest.approx(one, rel=TOL, abs=TOL), (two, one)


def test_reading_commands_and_snapshot_metrics_on_two_ranks_equal_one(inputs, tmp_path, monkeypatch):
    d = inputs
    out2, out1 = tmp_path / "two", tmp_path / "one"
    finetune = ["finetune-stylegan", str(d["data"]), "--network", str(d["src"]), "--out", str(out2 / "sg"), "--device", "cpu",
                "--batch", "4", "--kimg", "0.008", "--tick-kimg", "0.008", "--mbstd-group", "2", "--metrics", METRICS_NET,
                "--num-gen", str(SNAP_NUM_GEN)]
    two = _launch(tmp_path, monkeypatch, [finetune, *_reading_jobs(d, out2, "2")], 2, "home2")[1:]
    record = json.loads((out2 / "sg" / "metric-fid.jsonl").read_text())
    snapshot = out2 / "sg" / record["snapshot_pkl"]
    # One process scores that snapshot as the trainer's job did: --batch 10 lays the 20 samples and the 20
    # data images out as the 2 ranks' blocks were (one batch of 10 each); PPL at the trainer's batch of 32.
    rescore = ["score", "--network", str(snapshot), str(d["data"]), "--num-gen", str(SNAP_NUM_GEN), "--device", "cpu",
               "--workers", "0", "--json"]
    reading = _reading_jobs(d, out1, "1")
    one = _launch(tmp_path, monkeypatch, [*reading[:4], [*rescore, "--metrics", "fid,kid,is,pr", "--batch", "10"],
                                          [*rescore, "--metrics", "ppl2_wend", "--batch", "32"], reading[4]], 1, "home1")
    stats2, ab2, net2, blend2, poisoned2 = (json.loads(r["stdout"]) if r["exit_code"] == 0 else r for r in two)
    stats1, ab1, net1, blend1, snap_a, snap_ppl, poisoned1 = (json.loads(r["stdout"]) if r["exit_code"] == 0 else r for r in one)

    # stats: the same statistics; rank 0 wrote them, each rank computed half of the features.
    assert stats2["features"]["computed_per_rank"] == [6, 6] and "computed_per_rank" not in stats1["features"]
    for kind in ("fid", "kid"):
        with np.load(stats2["files"][kind]) as f2, np.load(stats1["files"][kind]) as f1:
            for key in f1.files:
                np.testing.assert_allclose(f2[key], f1[key], rtol=TOL, atol=TOL)

    # score A B: every metric as one process; B's features computed half by each rank; one --out report.
    assert ab2["metrics"]["fid"]["value"] > 0
    for name, keys in (("fid", ["value"]), ("kid", ["value", "std"]), ("pr", ["precision", "recall"]),
                       ("style", ["cosine", "fd"]), ("gram", ["value"])):
        for key in keys:
            _close(ab2["metrics"][name][key], ab1["metrics"][name][key])
    computed = {(f["set"], f["extractor"]): f for f in ab2["features"]}
    assert computed[("B", "tiny-inception")]["computed_per_rank"] == [6, 6]
    assert computed[("A", "tiny-style")]["computed_per_rank"] == [6, 6]
    assert ab2["metrics"]["gram"]["images_per_rank"] == {"A": [6, 6], "B": [6, 6]}
    assert json.loads((out2 / "report.json").read_text())["metrics"]["fid"]["value"] == ab2["metrics"]["fid"]["value"]

    # score --network: each rank generated its 6 of the 12 seeds; PPL's 2 batches one per rank.
    assert net2["a"]["n"] == N_SET and net2["a"]["seeds"] == "1-12" and net2["a"]["generated_per_rank"] == [6, 6]
    for name, keys in (("fid", ["value"]), ("kid", ["value"]), ("is", ["value", "std"]), ("pr", ["precision", "recall"]),
                       ("ppl2_wend", ["value"])):
        for key in keys:
            _close(net2["metrics"][name][key], net1["metrics"][name][key])
    assert net2["metrics"]["ppl2_wend"]["samples_per_rank"] == [6, 6] and "samples_per_rank" not in net1["metrics"]["ppl2_wend"]
    assert net2["metrics"]["ppl2_wend"]["value"] > 0 and net2["metrics"]["ppl2_wend"]["kept"] == net1["metrics"]["ppl2_wend"]["kept"]

    # blend-layers --metrics: one job for the whole sweep, each blend's FID from both ranks' shares; rank 0
    # wrote the networks, the preview and the record once.
    for entry2, entry1 in zip(blend2["sweep"], blend1["sweep"], strict=True):
        _close(entry2["metrics"]["fid"], entry1["metrics"]["fid"])
    assert sorted(p.name for p in (out2 / "blend").iterdir()) == sorted(p.name for p in (out1 / "blend").iterdir())

    # finetune-stylegan --metrics on 2 ranks: the snapshot's values are what one process scores from it.
    lines = (out2 / "sg" / "metrics.jsonl").read_text().splitlines()
    snap = [json.loads(x) for x in lines if "fid" in json.loads(x)][-1]
    scored = {**snap_a["metrics"], **snap_ppl["metrics"]}
    pairs = [("fid", scored["fid"]["value"]), ("kid", scored["kid"]["value"]), ("is_mean", scored["is"]["value"]),
             ("is_std", scored["is"]["std"]), ("pr_precision", scored["pr"]["precision"]), ("pr_recall", scored["pr"]["recall"]),
             ("ppl2_wend", scored["ppl2_wend"]["value"])]
    for key, expected in pairs:
        _close(snap[key], expected)
    assert record["num_gpus"] == 2 and record["results"]["fid"] == snap["fid"] and snap_a["a"]["n"] == SNAP_NUM_GEN

    # A black image in rank 1's block: that rank fails in its work, every rank ends with exit 2, rank 0 says why.
    assert poisoned1["exit_code"] == poisoned2["exit_code"] == 2
    assert "a black image reached the style model" in poisoned1["output"]
    assert "rank 1: a black image reached the style model" in poisoned2["output"]
