"""`stylekit score`: features cache, FID/KID through clean-fid's pipeline, style ranking, CLI and exit codes."""

import json
import os
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from stylekit.configs.score import ScoreConfig
from stylekit.data.imageset import open_image_set
from stylekit.metrics import score as score_mod
from stylekit.metrics.features import EmbedderExtractor, extract_features
from stylekit.metrics.fid import InceptionExtractor
from stylekit.metrics.score import score_sets

STYLEKIT = str(Path(sys.executable).parent / "stylekit")


# ---------------------------------------------------------------- toy data and tiny models


def make_images(folder: Path, kind: str, n: int, size: int = 48, seed: int = 0, ext: str = ".png") -> list[Path]:
    """`stripes` (oriented bands, warm colours) or `blobs` (smooth noise, cool colours)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    paths = []
    for i in range(n):
        if kind == "stripes":
            angle, period = rng.uniform(0, np.pi), rng.uniform(4, 8)
            v = (np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period) > 0).astype(np.float32)
            base = np.array([0.9, 0.4, 0.1]) * rng.uniform(0.7, 1.0)
        else:
            small = rng.random((6, 6)).astype(np.float32)
            v = np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC), np.float32) / 255
            base = np.array([0.1, 0.5, 0.9]) * rng.uniform(0.7, 1.0)
        img = v[..., None] * base + (1 - v[..., None]) * base * 0.3 + rng.normal(0, 0.02, (size, size, 3))
        path = folder / f"{kind}_{i:03d}{ext}"
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


class TinyInception(torch.nn.Module):
    """Random conv net on clean-fid's input ([N,3,299,299] in [0,255]) -> 16-d."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 16, kernel_size=9, stride=8)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += x.shape[0]
        return torch.relu(self.conv(x / 255.0)).mean((2, 3))


def handcrafted_style(x: torch.Tensor) -> torch.Tensor:
    """A small style embedding: colour means/stds and horizontal/vertical gradient energy."""
    gx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean((2, 3))
    gy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean((2, 3))
    z = torch.cat([x.mean((2, 3)), x.std((2, 3)), gx, gy], dim=1)
    return torch.nn.functional.normalize(z - 0.3, dim=1)


@pytest.fixture
def tiny(monkeypatch):
    net = TinyInception()
    monkeypatch.setitem(score_mod.EXTRACTORS, "inception", lambda cfg, dev: InceptionExtractor(cfg.mode, dev, model=net, name="tiny-inception", dim=16))
    monkeypatch.setitem(score_mod.EXTRACTORS, "style", lambda cfg, dev: EmbedderExtractor("handcrafted-style", handcrafted_style, 12, size=32))
    return net


@pytest.fixture
def sets(tmp_path):
    a = tmp_path / "a"
    make_images(a, "stripes", 20, seed=1)
    a2 = tmp_path / "a2"
    make_images(a2, "stripes", 20, seed=2)
    b = tmp_path / "b"
    make_images(b, "blobs", 20, seed=3)
    return a, a2, b


class CountingExtractor:
    """Tiny extractor that records how many images it computed."""

    name = "counting"
    mode = "test"
    dim = 4
    cleanfid_decode = False

    def __init__(self) -> None:
        from stylekit.data.imageset import SquareResize

        self.preprocess = SquareResize(16)
        self.seen = 0

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.seen += batch.shape[0]
        return torch.cat([batch.mean((2, 3)), batch.std((1, 2, 3))[:, None]], dim=1)


# ---------------------------------------------------------------- cache


def test_cache_reuses_recomputes_changed_and_rebuilds_corrupt(tmp_path):
    folder = tmp_path / "imgs"
    paths = make_images(folder, "stripes", 6)
    cache = tmp_path / "cache"
    ext = CountingExtractor()
    first = extract_features(open_image_set(folder), ext, cache=cache)
    assert (first.computed, first.hits, ext.seen) == (6, 0, 6)

    again = extract_features(open_image_set(folder), ext, cache=cache)
    assert (again.computed, again.hits, ext.seen) == (0, 6, 6)
    np.testing.assert_array_equal(again.features, first.features)

    # Change one file (content and mtime) and add one: only those two are computed.
    make_images(tmp_path / "tmp", "blobs", 1)
    os.replace(tmp_path / "tmp" / "blobs_000.png", paths[2])
    os.utime(paths[2], ns=(time.time_ns(), time.time_ns() + 10**9))
    make_images(tmp_path / "tmp2", "blobs", 1, seed=5)
    os.replace(tmp_path / "tmp2" / "blobs_000.png", folder / "zzz_new.png")
    third = extract_features(open_image_set(folder), ext, cache=cache)
    assert (third.computed, third.hits, ext.seen) == (2, 5, 8)
    assert not np.allclose(third.features[2], first.features[2])

    # Corrupt one cached row: detected by its digest, recomputed alone.
    # (A row still in use: the cache also holds the stale row of the replaced file.)
    from stylekit.metrics.features import cache_key

    db = next(cache.glob("*.sqlite"))
    key = cache_key(open_image_set(folder).items[0], ext.name, ext.mode)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE features SET data = ? WHERE key = ?", (np.ones(4, np.float32).tobytes(), key))
    fourth = extract_features(open_image_set(folder), ext, cache=cache)
    assert (fourth.computed, fourth.rebuilt, ext.seen) == (1, 1, 9)
    np.testing.assert_allclose(fourth.features, third.features)

    # A cache file that is not a database any more is moved aside and rebuilt.
    db.write_bytes(b"garbage" * 100)
    fifth = extract_features(open_image_set(folder), ext, cache=cache)
    assert fifth.computed == 7
    assert list(cache.glob("*.corrupt-*"))


def test_corrupt_and_mixed_case_files_and_zip(tmp_path):
    folder = tmp_path / "imgs"
    make_images(folder, "stripes", 4, ext=".PNG")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (folder / "empty.png").write_bytes(b"")
    ext = CountingExtractor()
    result = extract_features(open_image_set(folder), ext, cache=tmp_path / "cache")
    assert result.features.shape == (4, 4)
    reasons = {Path(s.path).name: s.reason for s in result.report.skipped}
    assert set(reasons) == {"broken.jpg", "empty.png"} and "empty" in reasons["empty.png"]
    # Undecodable files are remembered: the rerun decodes nothing.
    rerun = extract_features(open_image_set(folder), ext, cache=tmp_path / "cache")
    assert rerun.computed == 0 and len(rerun.report.skipped) == 2

    archive = tmp_path / "imgs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, f"sub/{p.name}")
    zipped = extract_features(open_image_set(archive), CountingExtractor(), cache=False)
    np.testing.assert_allclose(zipped.features, result.features, atol=1e-6)
    assert len(zipped.report.skipped) == 2


# ---------------------------------------------------------------- FID / KID through clean-fid's pipeline


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # clean-fid's own sqrtm on a 20-image set
def test_fid_of_set_with_itself_is_zero_and_matches_cleanfid(tiny, sets, tmp_path):
    from cleanfid import fid as cleanfid

    a, _, b = sets
    same = score_sets(ScoreConfig(a=str(a), b=str(a), metrics=["fid", "kid"], device="cpu", workers=0))
    assert same.metrics["fid"]["value"] == pytest.approx(0.0, abs=1e-6)
    report = score_sets(ScoreConfig(a=str(a), b=str(b), metrics=["fid", "kid"], device="cpu", workers=0))
    # Same files, same feature model: clean-fid's own compute_fid gives the same number.
    reference = cleanfid.compute_fid(str(a), str(b), mode="clean", custom_feat_extractor=TinyInception(), num_workers=0,
                                     batch_size=8, device=torch.device("cpu"), verbose=False, use_dataparallel=False)
    assert report.metrics["fid"]["value"] == pytest.approx(float(reference), rel=1e-4)
    assert report.metrics["fid"]["value"] > 1e-3
    kid = report.metrics["kid"]
    assert abs(same.metrics["kid"]["value"]) < 0.1 * kid["value"]  # unbiased: ~0 (may be slightly negative)
    assert kid["x1000"] == pytest.approx(kid["value"] * 1000) and kid["subset_size"] == 20
    assert any("2048" in w for w in report.warnings)
    assert report.a["n"] == 20 and report.b["used"] == 20


@pytest.fixture(scope="module")
def random_fid_weights(tmp_path_factory):
    """A random state dict in the layout of pytorch-fid's pt_inception-2015-12-05 file (566 tensors)."""
    from stylekit.metrics.fid import FIDInceptionV3

    torch.manual_seed(0)
    net = FIDInceptionV3().net
    for m in net.modules():  # keep activations O(1) through 90+ layers so the comparison means something
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        elif isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.8, 1.2)
            m.bias.data.normal_(0, 0.1)
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.8, 1.5)
    path = tmp_path_factory.mktemp("inception") / "inception-random.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")  # torchvision's 'pretrained' deprecation, raised by clean-fid's builder
def test_fid_inception_equals_cleanfid_pytorch_port(random_fid_weights, monkeypatch):
    """Built without any download and loaded weights_only, the network equals clean-fid's pytorch_inception model."""
    import cleanfid.inception_pytorch as ip
    from cleanfid.features import feature_extractor

    state = torch.load(random_fid_weights, map_location="cpu", weights_only=True)
    assert len(state) == 566
    monkeypatch.setattr(ip, "load_state_dict_from_url", lambda *a, **k: state)  # clean-fid's own builder, fed locally
    reference = feature_extractor(name="pytorch_inception", device=torch.device("cpu"), use_dataparallel=False)
    ext = InceptionExtractor("legacy_pytorch", "cpu", weights=str(random_fid_weights))
    assert ext.name.startswith("inception-pt:") and ext.dim == 2048
    x = torch.rand(1, 3, 299, 299) * 255
    with torch.no_grad():
        ours, ref = ext(x), reference(x)
    assert ours.shape == (1, 2048) and ref.abs().mean() > 1e-3
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


def test_inception_input_per_mode_is_cleanfids():
    """What the network sees per mode: clean-fid's TorchScript feeds (x - 128) / 128 (after its TF1 resize for
    legacy_tensorflow); its pytorch_inception path feeds 2 (x / 255) - 1."""
    from stylekit.errors import BadInput
    from stylekit.metrics.fid import InceptionFeatures, tf1_resize_bilinear

    x = torch.rand(2, 3, 299, 299) * 255
    small = torch.rand(2, 3, 40, 56) * 255
    seen = {m: InceptionFeatures(torch.nn.Identity(), m) for m in ("clean", "legacy_pytorch", "legacy_tensorflow")}
    torch.testing.assert_close(seen["clean"](x), (x - 128) / 128)
    torch.testing.assert_close(seen["legacy_pytorch"](x), 2 * (x / 255) - 1)
    torch.testing.assert_close(seen["legacy_tensorflow"](small), (tf1_resize_bilinear(small) - 128) / 128)
    with pytest.raises(BadInput):
        seen["clean"](small)


def test_tf1_resize_matches_tensorflow_v1_bilinear():
    """TF1 ResizeBilinear (no half-pixel centres): output j samples input j * in / out, edges clamped."""
    from stylekit.metrics.fid import tf1_resize_bilinear

    def reference(img: np.ndarray, out: int) -> np.ndarray:
        def axis(n: int):
            src = np.arange(out) * n / out
            i0 = np.floor(src).astype(int)
            return i0, np.minimum(i0 + 1, n - 1), src - i0

        y0, y1, fy = axis(img.shape[2])
        x0, x1, fx = axis(img.shape[3])
        fy, fx = fy[:, None], fx[None, :]
        rows0, rows1 = img[:, :, y0], img[:, :, y1]
        top = rows0[..., x0] * (1 - fx) + rows0[..., x1] * fx
        bottom = rows1[..., x0] * (1 - fx) + rows1[..., x1] * fx
        return top * (1 - fy) + bottom * fy

    torch.manual_seed(0)
    for h, w in ((40, 56), (512, 333), (299, 299)):
        img = torch.rand(2, 3, h, w) * 255
        got = tf1_resize_bilinear(img)
        assert got.shape == (2, 3, 299, 299)
        np.testing.assert_allclose(got.numpy(), reference(img.double().numpy(), 299), atol=0.02)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # a real torch.jit.save archive
def test_fid_inception_refuses_torchscript_and_checks_named_hash(tmp_path, monkeypatch):
    from stylekit.errors import BadInput
    from stylekit.metrics import fid

    archive = tmp_path / "inception-2015-12-05.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(archive))
    monkeypatch.setattr(fid, "FIDInceptionV3", lambda: pytest.fail("built a network for a refused file"))
    with pytest.raises(BadInput) as exc:
        _ = InceptionExtractor("clean", "cpu", weights=str(archive)).model
    assert "TorchScript" in str(exc.value) and "stylekit download inception-fid" in str(exc.value)
    misnamed = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save({"x": torch.zeros(1)}, misnamed)
    with pytest.raises(BadInput) as exc:
        InceptionExtractor("clean", "cpu", weights=str(misnamed))
    assert "6726825d" in str(exc.value)


def test_style_ranks_same_style_above_different_style(tiny, sets):
    a, a2, b = sets
    same = score_sets(ScoreConfig(a=str(a), b=str(a2), metrics=["style"], device="cpu", workers=0)).metrics["style"]
    diff = score_sets(ScoreConfig(a=str(a), b=str(b), metrics=["style"], device="cpu", workers=0)).metrics["style"]
    assert same["cosine"] > diff["cosine"]
    assert same["fd"] < diff["fd"]
    assert same["nn_label_agreement"] is None


def test_single_image_is_a_one_image_set_where_the_metric_allows_it(tiny, sets, tmp_path):
    a, _, b = sets
    one = sorted(a.glob("*.png"))[0]
    style = score_sets(ScoreConfig(a=str(one), b=str(a), metrics=["style"], device="cpu", workers=0)).metrics["style"]
    other = score_sets(ScoreConfig(a=str(one), b=str(b), metrics=["style"], device="cpu", workers=0)).metrics["style"]
    assert style["cosine"] > other["cosine"] and style["fd"] is None  # one image has no spread: no Fréchet distance
    result = _invoke([str(one), str(a), "--metrics", "fid", "--device", "cpu"])
    assert result.exit_code == 2 and "single image" in result.output and "a folder is expected" in result.output
    assert "--metrics style" in result.output
    result = _invoke([str(a), str(b), "--metrics", "style", "--out", f"{tmp_path / 'reports'}/"])
    assert result.exit_code == 2 and "is a folder" in result.output and not (tmp_path / "reports").exists()


def test_style_nn_label_agreement_with_class_folders(tiny, tmp_path):
    ref, query = tmp_path / "ref", tmp_path / "query"
    for root, seed in ((ref, 0), (query, 10)):
        make_images(root / "stripes", "stripes", 8, seed=seed)
        make_images(root / "blobs", "blobs", 8, seed=seed + 1)
    report = score_sets(ScoreConfig(a=str(ref), b=str(query), metrics=["style"], device="cpu", workers=0))
    assert report.metrics["style"]["nn_label_agreement"] == pytest.approx(1.0)
    assert report.metrics["style"]["nn_labelled"] == 16


def test_gram_and_style_gram_with_pairs(tmp_path):
    from safetensors.torch import save_file

    from stylekit.nets.vgg import VGGFeatures

    vgg = tmp_path / "vgg19-random.safetensors"
    net = VGGFeatures(arch="vgg19", layers=["relu5_1"], weights=None)
    save_file({k: v.contiguous() for k, v in net.body.state_dict().items()}, str(vgg))
    a, b = tmp_path / "a", tmp_path / "b"
    make_images(a, "stripes", 4, seed=1)
    make_images(b, "stripes", 3, seed=2)
    for p in b.iterdir():  # name B like A so that --pairs matches 3 of 4
        p.rename(b / p.name.replace(".png", ".jpg"))
    report = score_sets(ScoreConfig(a=str(a), b=str(b), metrics=["gram", "style"], embedder="gram", vgg_weights=str(vgg),
                                    size=32, device="cpu", workers=0, pairs=True))
    gram = report.metrics["gram"]
    assert gram["value"] > 0 and set(gram["per_layer"]) == {"relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"}
    assert report.pairs["matched"] == 3 and report.pairs["unmatched_a"] == ["stripes_003.png"]
    assert len(report.pairs["per_pair"]) == 3
    assert all({"gram", "style_cosine"} <= set(v) for v in report.pairs["per_pair"].values())
    assert report.metrics["style"]["embedder"].startswith("gram-sketch:")
    self_report = score_sets(ScoreConfig(a=str(a), b=str(a), metrics=["gram"], vgg_weights=str(vgg), size=32, device="cpu", workers=0))
    assert self_report.metrics["gram"]["value"] == pytest.approx(0.0, abs=1e-9)


# ---------------------------------------------------------------- CLI and exit codes


def _invoke(args):
    from stylekit.cli.app import app

    return CliRunner().invoke(app, ["score", *args])


def test_cli_json_with_injected_extractors(tiny, sets, tmp_path):
    a, _, b = sets
    (a / "bad.png").write_bytes(b"nope")
    out = tmp_path / "report.json"
    result = _invoke([str(a), str(b), "--json", "--device", "cpu", "--workers", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc["metrics"]) == {"fid", "kid", "style"}
    assert doc["a"]["n"] == 21 and doc["a"]["used"] == 20
    assert doc["a"]["skipped"][0]["path"].endswith("bad.png")
    assert doc["models"]["inception"]["name"] == "tiny-inception"
    assert json.loads(out.read_text())["metrics"]["fid"]["value"] == pytest.approx(doc["metrics"]["fid"]["value"])
    hits = [f for f in doc["features"] if f["extractor"] == "tiny-inception"]
    assert sum(f["computed"] for f in hits) == 41  # 40 images + the undecodable one, tried once

    rerun = _invoke([str(a), str(b), "--json", "--device", "cpu", "--workers", "0"])
    assert rerun.exit_code == 0
    assert all(f["computed"] == 0 for f in json.loads(rerun.stdout)["features"])


def test_exit_codes(tiny, tmp_path, sets, monkeypatch):
    a, _, _ = sets
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _invoke([str(a), str(empty), "--device", "cpu"]).exit_code == 2
    assert _invoke([str(a), str(tmp_path / "missing"), "--device", "cpu"]).exit_code == 2
    assert _invoke([str(a), str(a), "--metrics", "fid,bogus"]).exit_code == 2
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"nope")
    (bad / "y.png").write_bytes(b"nope")
    result = _invoke([str(a), str(bad), "--metrics", "fid", "--device", "cpu", "--workers", "0"])
    assert result.exit_code == 2 and "readable" in result.output
    assert _invoke([str(a), "stats:Bad Name/3"]).exit_code == 2
    assert _invoke([str(a), "stats:ffhq/256/nosplit"]).exit_code == 2
    result = _invoke([str(a), "stats:nonsense/3"])  # not hosted: your own, made with `stylekit stats`
    assert result.exit_code == 3 and "stylekit stats DATA --name nonsense --size 3" in result.output
    # Offline without cached statistics: exit 3 with the command that fetches them.
    result = _invoke([str(a), "stats:ffhq/256", "--device", "cpu", "--workers", "0"])
    assert result.exit_code == 3 and "curl" in result.output and "ffhq_clean_trainval70k_256.npz" in result.output
    monkeypatch.setitem(score_mod.EXTRACTORS, "style", score_mod._style_factory)
    result = _invoke([str(a), str(a), "--metrics", "style", "--style-model", str(tmp_path / "no-model")])
    assert result.exit_code == 3 and "train-classifier" in result.output


def test_missing_weights_offline_exit_3(sets, monkeypatch):
    a, _, _ = sets
    monkeypatch.setenv("STYLEKIT_OFFLINE", "1")
    result = _invoke([str(a), str(a), "--metrics", "fid", "--device", "cpu"])
    assert result.exit_code == 3 and "stylekit download inception-fid" in result.output
    result = _invoke([str(a), str(a), "--metrics", "cmmd", "--device", "cpu"])
    assert result.exit_code == 3 and "stylekit download clip-vit-b-32" in result.output
    result = _invoke([str(a), str(a), "--metrics", "gram", "--device", "cpu"])
    assert result.exit_code == 3 and "stylekit download vgg19" in result.output


def test_subprocess_cmmd_and_clip_style_with_tiny_clip(tmp_path, sets):
    from clip_tiny import make_tiny_clip_dir

    a, _, b = sets
    clip_dir = make_tiny_clip_dir(tmp_path / "tiny-clip")
    env = {**os.environ, "STYLEKIT_OFFLINE": "1"}
    proc = subprocess.run(
        [STYLEKIT, "score", str(a), str(b), "--metrics", "clip-fid,cmmd,style", "--clip-model", str(clip_dir),
         "--device", "cpu", "--workers", "0", "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["metrics"]["cmmd"]["value"] > 0 and doc["metrics"]["clip-fid"]["value"] > 0
    assert doc["metrics"]["style"]["embedder"].startswith("clip:")
    assert doc["models"]["clip"]["dim"] == 32


# ------------------------------------------------------------------------------------- edge rules
def test_out_report_is_kept_unless_fresh(tiny, sets, tmp_path):
    a, _, b = sets
    out = tmp_path / "reports" / "r.json"
    args = [str(a), str(b), "--metrics", "fid", "--device", "cpu", "--workers", "0", "--out", str(out)]
    assert _invoke(args).exit_code == 0
    first = out.read_text()
    again = _invoke([*args, "--seed", "3"])
    assert again.exit_code == 2 and "--fresh" in again.output and "already holds a report" in again.output
    assert out.read_text() == first  # never a silent mix of two runs
    replaced = _invoke([*args, "--seed", "3", "--fresh", "--json"])
    assert replaced.exit_code == 0, replaced.output
    assert json.loads(out.read_text())["config"]["seed"] == 3


@pytest.mark.parametrize("args, names", [
    (["--kid-subsets", "0"], "--kid-subsets"),
    (["--metrics", "fid,bogus"], "bogus"),
    (["--metrics", "ppl2_wend"], "--metrics ppl2_wend"),
    (["--num-gen", "5"], "--num-gen needs --network"),
    (["--embedder", "clip", "--style-model", "runs/x"], "--style-model"),
])
def test_a_refused_option_leaves_no_report_folder(sets, tmp_path, args, names):
    a, _, b = sets
    out = tmp_path / "never" / "r.json"
    r = _invoke([str(a), str(b), "--out", str(out), *args])
    assert r.exit_code == 2 and names in r.output, r.output
    assert not out.parent.exists()


def test_missing_input_or_bad_stand_in_leaves_no_report_folder(sets, tmp_path):
    a, _, _ = sets
    out = tmp_path / "never" / "r.json"
    r = _invoke([str(a), str(tmp_path / "missing"), "--out", str(out)])
    assert r.exit_code == 2 and not out.parent.exists()
    r = _invoke(["--network", "random:63", str(a), "--out", str(out)])
    assert r.exit_code == 2 and "random:RES" in r.output and not out.parent.exists()


def test_weights_stand_ins_are_labelled(sets, tmp_path):
    """--inception-weights/--clip-weights/--vgg-weights random run offline, and the report says they are stand-ins."""
    a, _, b = sets
    r = _invoke([str(a), str(b), "--metrics", "kid,gram,cmmd", "--inception-weights", "random", "--vgg-weights", "random",
                 "--clip-weights", "random", "--size", "32", "--kid-subset-size", "10", "--device", "cpu", "--workers", "0",
                 "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["stand_ins"] == ["--inception-weights random", "--clip-weights random", "--vgg-weights random"]
    assert r.stderr.count("random-init stand-in") == 3
    assert doc["models"]["inception"]["name"] == "inception-random(seed=0)"
    assert all(np.isfinite(doc["metrics"][m]["value"]) for m in ("kid", "gram", "cmmd"))
    unused = _invoke([str(a), str(b), "--metrics", "gram", "--inception-weights", "random", "--vgg-weights", "random",
                      "--size", "32", "--device", "cpu", "--workers", "0", "--json"])
    assert json.loads(unused.stdout)["stand_ins"] == ["--vgg-weights random"]  # only what the metrics used
