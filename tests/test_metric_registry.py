"""The metric registry (NVlabs names), PPL / precision-recall / Inception score against independent references,
and `score --network` (generator samples, no PNGs) equal to scoring the PNGs `generate` writes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.special
import torch
from test_score import TinyInception, make_images
from typer.testing import CliRunner

from stylekit.configs.score import ScoreConfig
from stylekit.errors import BadInput
from stylekit.metrics import score as score_mod
from stylekit.metrics.features import EmbedderExtractor
from stylekit.metrics.fid import InceptionExtractor
from stylekit.metrics.inception_score import inception_score
from stylekit.metrics.ppl import PPLConfig, batch_random, face_crop, perceptual_path_length
from stylekit.metrics.precision_recall import precision_recall
from stylekit.metrics.registry import FULL_CAP, parse_metric, parse_metrics
from stylekit.metrics.score import score_sets

pytestmark = pytest.mark.usefixtures("one_thread")
STYLEKIT = str(Path(sys.executable).parent / "stylekit")


# ---------------------------------------------------------------- names


def test_nvlabs_names_parse_into_their_protocols():
    s = parse_metric("fid50k_full")
    assert (s.family, s.num_gen, s.max_real) == ("fid", 50_000, None)
    assert (parse_metric("fid50k").max_real, parse_metric("fid10k").num_gen, parse_metric("FID10K").max_real) == (50_000, 10_000, 10_000)
    assert parse_metric("kid50k_full").max_real == FULL_CAP["kid"] == 1_000_000
    pr = parse_metric("pr50k3_full")
    assert (pr.family, pr.k, pr.num_gen, pr.max_real) == ("pr", 3, 50_000, 200_000)
    assert (parse_metric("pr10k5").k, parse_metric("pr10k5").max_real) == (5, 10_000)
    assert (parse_metric("is50k").family, parse_metric("is50k").splits, parse_metric("is50k").num_gen) == ("is", 10, 50_000)
    z = parse_metric("ppl_zfull")
    assert (z.family, z.space, z.sampling, z.crop, z.epsilon) == ("ppl", "z", "full", True, 1e-4)
    w2 = parse_metric("ppl2_wend")
    assert (w2.space, w2.sampling, w2.crop) == ("w", "end", False)
    assert [(p.space, p.sampling) for p in map(parse_metric, ("ppl_wfull", "ppl_zend", "ppl_wend"))] == [("w", "full"), ("z", "end"), ("w", "end")]
    for plain in ("fid", "kid", "clip-fid", "cmmd", "style", "gram", "pr", "is"):
        assert (parse_metric(plain).family, parse_metric(plain).num_gen) == (plain, None)
    assert [s.name for s in parse_metrics("fid, kid50k_full,fid")] == ["fid", "kid50k_full"]


@pytest.mark.parametrize("name", ["fid50k_ful", "ppl", "ppl_xend", "pr50k", "fid0k", "lpips", ""])
def test_unknown_names_list_the_valid_ones(name):
    with pytest.raises(BadInput) as exc:
        parse_metrics(name)
    text = str(exc.value)
    assert "fid50k_full" in text and "ppl2_wend" in text and "pr50k3_full" in text and "gram" in text


# ---------------------------------------------------------------- precision / recall


def _pr_numpy(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    def d(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    def covered(probes, manifold):
        radii = np.sort(d(manifold, manifold), axis=1)[:, k]  # column 0 is the point itself
        return float(np.mean([(d(p[None], manifold)[0] <= radii).any() for p in probes]))

    return covered(fake, real), covered(real, fake)


@pytest.mark.numerics
def test_precision_recall_matches_brute_force_numpy():
    rng = np.random.default_rng(0)
    real = rng.normal(0, 1, (60, 5)).astype(np.float32)
    fake = rng.normal(0.7, 1.3, (45, 5)).astype(np.float32)
    for k in (1, 3, 7):
        ours = precision_recall(torch.from_numpy(real), torch.from_numpy(fake), k=k, block=16)
        ref = _pr_numpy(real.astype(np.float64), fake.astype(np.float64), k)
        assert ours == pytest.approx(ref, abs=1e-9)
        assert 0 < ours[0] < 1 and 0 < ours[1] < 1
    same = precision_recall(torch.from_numpy(real), torch.from_numpy(real), k=3)
    assert same == (1.0, 1.0)
    with pytest.raises(BadInput, match="k = 3"):
        precision_recall(torch.from_numpy(real[:3]), torch.from_numpy(fake), k=3)


# ---------------------------------------------------------------- Inception score


@pytest.mark.numerics
def test_inception_score_matches_numpy_from_logits():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (100, 12))
    p = scipy.special.softmax(logits, axis=1)
    scores = []
    for i in range(10):
        part = p[i * 10 : (i + 1) * 10]
        kl = (part * (np.log(part) - np.log(part.mean(0, keepdims=True)))).sum(1).mean()
        scores.append(np.exp(kl))
    mean, std = inception_score(torch.from_numpy(logits), splits=10)
    assert (mean, std) == pytest.approx((np.mean(scores), np.std(scores)), rel=1e-10)
    # One class for every image: p(y|x) = p(y), KL 0, IS 1. Uniform confident classes over 4 labels: IS 4.
    assert inception_score(torch.zeros(20, 5), splits=2)[0] == pytest.approx(1.0)
    assert inception_score(torch.eye(4).repeat(5, 1) * 60, splits=1)[0] == pytest.approx(4.0, rel=1e-6)
    with pytest.raises(BadInput):
        inception_score(torch.zeros(5, 3), splits=10)


@pytest.mark.slow  # builds the full-size Inception three times
def test_inception_logits_head_is_the_bias_free_fc(tmp_path):
    from stylekit.metrics.fid import FIDInceptionV3, load_fid_inception

    torch.manual_seed(0)
    net = FIDInceptionV3().net
    torch.nn.init.normal_(net.fc.bias)
    path = tmp_path / "inception.pth"
    torch.save(net.state_dict(), path)
    pool_net, logit_net = load_fid_inception(path), load_fid_inception(path, logits=True)
    x = torch.rand(2, 3, 80, 80) * 2 - 1
    with torch.no_grad():
        pool, logits = pool_net(x), logit_net(x)
    assert pool.shape == (2, 2048) and logits.shape == (2, 1008)
    torch.testing.assert_close(logits, pool @ net.fc.weight.T, rtol=1e-4, atol=1e-4)
    assert InceptionExtractor("clean", "cpu", weights=str(path), logits=True).dim == 1008


# ---------------------------------------------------------------- perceptual path length


class LinearSynthesis(torch.nn.Module):
    """img = A w_flat + b + noise: linear in w. The noise buffer must be the same for both images of a pair."""

    def __init__(self, A: torch.Tensor, res: int) -> None:
        super().__init__()
        self.A, self.res = A, res
        self.register_buffer("noise_const", torch.zeros(3, res, res, dtype=A.dtype))

    def forward(self, ws, noise_mode="const", force_fp32=True):
        assert noise_mode == "const"
        return (ws.flatten(1) @ self.A.T).view(-1, 3, self.res, self.res) + 0.5 + 3 * self.noise_const


class IdentityMapping(torch.nn.Module):
    def __init__(self, num_ws: int) -> None:
        super().__init__()
        self.num_ws = num_ws

    def forward(self, z, c, truncation_psi=1.0):
        return z[:, None, :].repeat(1, self.num_ws, 1)


class LinearG(torch.nn.Module):
    """A tiny 'generator' whose image is linear in w (w = z broadcast to 2 layers); float64."""

    c_dim = 0

    def __init__(self, A: torch.Tensor, res: int, z_dim: int) -> None:
        super().__init__()
        self.z_dim, self.img_resolution = z_dim, res
        self.mapping = IdentityMapping(2)
        self.synthesis = LinearSynthesis(A, res)
        self.anchor = torch.nn.Parameter(torch.zeros(1, dtype=A.dtype))  # device/dtype for the sampler


def _l2(img: torch.Tensor) -> torch.Tensor:
    return img.flatten(1)


def _filtered_mean(d: np.ndarray) -> float:
    lo, hi = np.percentile(d, 1, method="lower"), np.percentile(d, 99, method="higher")
    return float(d[(d >= lo) & (d <= hi)].mean())


def _draws(cfg: PPLConfig, z_dim: int):
    t, z0, z1 = [], [], []
    for index, start in enumerate(range(0, cfg.num_samples, cfg.batch)):
        ti, a, b, _ = batch_random(cfg.seed, index, min(cfg.batch, cfg.num_samples - start), z_dim, torch.float64)
        t.append(ti), z0.append(a), z1.append(b)
    return torch.cat(t).numpy(), torch.cat(z0).numpy(), torch.cat(z1).numpy()


@pytest.mark.parametrize("sampling", ["end", "full"])
@pytest.mark.parametrize("crop", [False, True])
def test_ppl_w_of_a_linear_generator_has_its_closed_form(sampling, crop):
    """w-space: lerp is linear, so ||A (w(t + eps) - w(t))||^2 / eps^2 = ||A (w1 - w0)||^2 for any t."""
    res, z_dim = 16, 6
    gen = torch.Generator().manual_seed(3)
    A = torch.randn(3 * res * res, 2 * z_dim, generator=gen, dtype=torch.float64) * 0.1
    G = LinearG(A, res, z_dim)
    G.synthesis.noise_const.fill_(0.25)
    cfg = PPLConfig(num_samples=150, space="w", sampling=sampling, crop=crop, batch=32, seed=5)
    result = perceptual_path_length(G, _l2, cfg)

    _, z0, z1 = _draws(cfg, z_dim)
    dw = np.concatenate([z1 - z0, z1 - z0], axis=1)  # w = z broadcast to 2 layers
    rows = A.numpy().reshape(3, res, res, -1)
    if crop:
        c = res // 8
        rows = rows[:, c * 3 : c * 7, c * 2 : c * 6]
    expected = ((dw @ rows.reshape(-1, dw.shape[1]).T) ** 2).sum(1)
    np.testing.assert_allclose(result.distances, expected, rtol=1e-6)
    assert result.value == pytest.approx(_filtered_mean(expected), rel=1e-6)
    assert result.kept < cfg.num_samples  # the percentile filter dropped the extremes
    assert float(G.synthesis.noise_const.abs().max()) == 0.25  # noise buffers restored


def test_ppl_z_of_an_isometric_generator_is_the_slerp_speed():
    """z-space: slerp moves unit vectors at angular speed theta = angle(z0, z1); with A^T A = s^2 I and w = [z, z],
    the distance is 2 s^2 theta^2 whatever t is."""
    res, z_dim, s = 8, 5, 0.7
    q, _ = torch.linalg.qr(torch.randn(3 * res * res, 2 * z_dim, generator=torch.Generator().manual_seed(4), dtype=torch.float64))
    G = LinearG(q * s, res, z_dim)
    for sampling in ("end", "full"):
        cfg = PPLConfig(num_samples=120, space="z", sampling=sampling, batch=50, seed=2)
        result = perceptual_path_length(G, _l2, cfg)
        _, z0, z1 = _draws(cfg, z_dim)
        cos = (z0 * z1).sum(1) / np.linalg.norm(z0, axis=1) / np.linalg.norm(z1, axis=1)
        expected = 2 * s**2 * np.arccos(cos) ** 2
        np.testing.assert_allclose(result.distances, expected, rtol=1e-3)
        assert result.value == pytest.approx(_filtered_mean(expected), rel=1e-3)


def test_face_crop_is_nvlabs_region():
    img = torch.arange(16 * 16, dtype=torch.float32).view(1, 1, 16, 16)
    out = face_crop(img)
    assert out.shape == (1, 1, 8, 8) and out[0, 0, 0, 0] == 6 * 16 + 4


# ---------------------------------------------------------------- score --network


class TinyLogits(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = torch.nn.Conv2d(3, 10, kernel_size=9, stride=8)

    def forward(self, x):
        return self.conv(x / 64.0 - 2).mean((2, 3)) * 4


def _colour_stats(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x.mean((2, 3)), x.std((2, 3)), x[..., ::4, ::4].flatten(2).mean(2)], dim=1)


def tiny_extractors() -> dict:
    inception, logits = TinyInception(), TinyLogits()
    return {
        "inception": lambda cfg, dev: InceptionExtractor(cfg.mode, dev, model=inception, name="tiny-inception", dim=16),
        "inception-logits": lambda cfg, dev: InceptionExtractor(cfg.mode, dev, model=logits, name="tiny-logits", dim=10),
        "vgg16": lambda cfg, dev: EmbedderExtractor("tiny-vgg", _colour_stats, 9, size=32),
        "lpips": lambda cfg, dev: _lpips_tiny(),
    }


def _lpips_tiny():
    from stylekit.nets.lpips import LPIPS

    net = LPIPS(vgg_weights=None, seed=0, channels_last=False)
    net.name = "lpips-random"
    return net.features


@pytest.fixture(scope="module")
def tiny_net(tmp_path_factory):
    from stylekit.nets.stylegan2.load import save_network
    from stylekit.nets.stylegan2.tiny import tiny_generator

    path = tmp_path_factory.mktemp("net") / "tiny.safetensors"
    return save_network(path, G=tiny_generator(32, seed=0))


@pytest.fixture(scope="module")
def ref_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ref")
    make_images(folder, "blobs", 24, size=32, seed=7)
    return folder


@pytest.mark.numerics
def test_score_network_equals_scoring_the_generated_pngs(tiny_net, ref_set, tmp_path):
    from stylekit.configs.stylegan import GenerateConfig
    from stylekit.edit.generate import run_generate

    run_generate(GenerateConfig(network=str(tiny_net), seeds=list(range(3, 3 + 40)), out=tmp_path / "gen", grid=False, device="cpu"))
    metrics = ["fid", "kid", "is", "pr", "style"]
    ext = {**tiny_extractors(), "style": lambda cfg, dev: EmbedderExtractor("tiny-style", _colour_stats, 9, size=32)}
    common = dict(metrics=metrics, device="cpu", cache=False, kid_subsets=10, extractors=ext, seed=3)  # seed: also KID's subsets
    folder = score_sets(ScoreConfig(a=str(tmp_path / "gen"), b=str(ref_set), **common))
    direct = score_sets(ScoreConfig(network=str(tiny_net), a=str(ref_set), num_gen=40, batch=16, **common))
    assert direct.a["seeds"] == "3-42" and direct.a["n"] == 40 and direct.b["n"] == 24
    assert not list(Path(tiny_net).parent.glob("*.png"))
    for name in ("fid", "kid", "is"):
        assert direct.metrics[name]["value"] == pytest.approx(folder.metrics[name]["value"], rel=1e-4, abs=1e-6), name
    for key in ("precision", "recall"):
        assert direct.metrics["pr"][key] == pytest.approx(folder.metrics["pr"][key], abs=1e-9)
    assert direct.metrics["style"]["cosine"] == pytest.approx(folder.metrics["style"]["cosine"], rel=1e-5)
    assert direct.metrics["fid"]["value"] > 0 and direct.metrics["is"]["value"] > 1
    assert direct.metrics["fid"]["num_gen"] == 40 and direct.metrics["pr"]["k"] == 3


def test_score_network_ppl_through_lpips_is_seeded(tiny_net):
    cfg = dict(network=str(tiny_net), metrics=["ppl2_wend", "ppl_zfull"], num_gen=8, batch=4, device="cpu", extractors=tiny_extractors())
    one, two = score_sets(ScoreConfig(**cfg)), score_sets(ScoreConfig(**{**cfg, "metrics": ["ppl2_wend"]}))
    assert one.metrics["ppl2_wend"]["value"] == two.metrics["ppl2_wend"]["value"] > 0
    assert one.metrics["ppl_zfull"]["crop"] is True and one.metrics["ppl2_wend"]["crop"] is False
    assert one.metrics["ppl_zfull"]["samples"] == 8 and one.models["lpips"]["name"] == "lpips-random"
    other = score_sets(ScoreConfig(**{**cfg, "seed": 1, "metrics": ["ppl2_wend"]}))
    assert other.metrics["ppl2_wend"]["value"] != one.metrics["ppl2_wend"]["value"]


def test_score_config_bad_input(tiny_net, ref_set):
    ext = tiny_extractors()
    cases = [
        (dict(network=str(tiny_net), a=str(ref_set), num_gen=0), "--num-gen must be >= 1"),
        (dict(a=str(ref_set), b=str(ref_set), num_gen=5), "--num-gen needs --network"),
        (dict(network=str(tiny_net), a=str(ref_set), b=str(ref_set)), "one image set"),
        (dict(a=str(ref_set)), "two image sets"),
        (dict(a=str(ref_set), b=str(ref_set), metrics=["ppl2_wend"]), "from a generator"),
        (dict(network=str(tiny_net), metrics=["fid"], num_gen=4), "needs a reference"),
        (dict(a=str(ref_set), b=str(ref_set), metrics=["fid1k"]), "uses 1000 images of A"),
        (dict(network=str(tiny_net), a=str(ref_set), metrics=["pr"], num_gen=3), "pr needs at least 4 images, --num-gen gives 3"),
        (dict(network=str(tiny_net), metrics=["is"], num_gen=9), "is needs at least 10 images"),
        (dict(network=str(tiny_net), a="stats:ffhq/256", metrics=["pr"], num_gen=8), "precomputed statistics"),
    ]
    for kwargs, message in cases:
        with pytest.raises(BadInput, match=message):
            score_sets(ScoreConfig(device="cpu", cache=False, extractors=ext, **kwargs))


# ---------------------------------------------------------------- CLI


def _cli(args: list[str]):
    from stylekit.cli.app import app

    return CliRunner().invoke(app, ["score", *args])


def test_cli_score_network_json(tiny_net, ref_set, monkeypatch):
    for kind, factory in tiny_extractors().items():
        monkeypatch.setitem(score_mod.EXTRACTORS, kind, factory)
    r = _cli(["--network", str(tiny_net), str(ref_set), "--num-gen", "12", "--metrics", "fid,is,pr,ppl2_wend",
              "--batch", "6", "--seed", "2", "--device", "cpu", "--trunc", "0.7", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert list(doc["metrics"]) == ["fid", "is", "pr", "ppl2_wend"]
    assert doc["a"]["seeds"] == "2-13" and doc["a"]["trunc"] == 0.7
    assert doc["metrics"]["pr"]["family"] == "pr" and 0 <= doc["metrics"]["pr"]["recall"] <= 1
    table = _cli(["--network", str(tiny_net), str(ref_set), "--num-gen", "12", "--metrics", "is,pr", "--device", "cpu"])
    assert table.exit_code == 0 and "pr precision" in table.output and "seeds 0-11" in table.output


@pytest.mark.parametrize("args,message", [
    (["--metrics", "fid50k_fulll"], "fid50k_full"),
    (["--num-gen", "0"], "--num-gen must be >= 1"),
    (["--metrics", "pr", "--num-gen", "2"], "pr needs at least 4 images"),
])
def test_cli_score_network_bad_input_exit_2(tiny_net, ref_set, monkeypatch, args, message):
    for kind, factory in tiny_extractors().items():
        monkeypatch.setitem(score_mod.EXTRACTORS, kind, factory)
    r = _cli(["--network", str(tiny_net), str(ref_set), "--device", "cpu", *args])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


@pytest.mark.slow
def test_subprocess_ppl_without_lpips_weights_exit_3(tiny_net):
    env = {**os.environ, "STYLEKIT_OFFLINE": "1"}
    r = subprocess.run([STYLEKIT, "score", "--network", str(tiny_net), "--metrics", "ppl2_wend", "--num-gen", "4", "--device", "cpu"],
                       capture_output=True, text=True, env=env, timeout=180)
    assert r.returncode == 3, r.stderr
    assert "stylekit download vgg16" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------- finetune-stylegan --metrics


def test_finetune_snapshot_metrics_from_the_registry(tmp_path, monkeypatch):
    from test_finetune import make_tiny_setup, tiny_cfg

    from stylekit.train.stylegan import finetune_stylegan

    data, src = make_tiny_setup(tmp_path / "setup")
    for kind, factory in tiny_extractors().items():
        monkeypatch.setitem(score_mod.EXTRACTORS, kind, factory)
    out = tmp_path / "run"
    r = finetune_stylegan(tiny_cfg(data, src, out, kimg=0.004, snap=1, metrics=("fid", "pr", "is", "ppl2_wend"), num_gen=10))
    last = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    for key in ("fid", "pr_precision", "pr_recall", "is_mean", "is_std", "ppl2_wend"):
        assert isinstance(last[key], float) and r.last_metrics[key] == last[key], key
    lines = [json.loads(x) for x in (out / "metric-pr.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and set(lines[0]) == {"results", "metric", "total_time", "total_time_str", "num_gpus", "snapshot_pkl", "timestamp"}
    assert lines[0]["metric"] == "pr" and lines[0]["results"] == {"pr_precision": last["pr_precision"], "pr_recall": last["pr_recall"]}
    assert lines[0]["snapshot_pkl"] == "network-snapshot-000000.004.safetensors" and (out / lines[0]["snapshot_pkl"]).is_file()
    assert json.loads((out / "metric-ppl2_wend.jsonl").read_text())["results"] == {"ppl2_wend": last["ppl2_wend"]}


def test_finetune_metrics_names_checked_before_training(tmp_path):
    from stylekit.cli.app import app

    data = tmp_path / "data"
    make_images(data, "blobs", 4, size=32)
    for bad, message in (("fid,fid99x", "fid50k_full"), ("gram", "two image sets"), ("is", "is needs at least 10 images, --num-gen 5")):
        r = CliRunner().invoke(app, ["finetune-stylegan", str(data), "--network", "none", "--metrics", bad, "--num-gen", "5",
                                   "--out", str(tmp_path / "o"), "--device", "cpu"])
        assert r.exit_code == 2 and message in r.output, r.output
        assert not (tmp_path / "o").exists()


def test_explicit_num_gen_wins_over_the_count_in_a_name(tiny_net, ref_set, monkeypatch):
    """`score --network G --metrics fid50k_full --num-gen 20` generates 20 images, says so and records it."""
    for kind, factory in tiny_extractors().items():
        monkeypatch.setitem(score_mod.EXTRACTORS, kind, factory)
    r = _cli(["--network", str(tiny_net), str(ref_set), "--metrics", "fid50k_full,kid", "--num-gen", "20",
              "--kid-subset-size", "10", "--device", "cpu", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["a"]["n"] == 20 and doc["a"]["seeds"] == "0-19"
    assert doc["metrics"]["fid50k_full"]["num_gen"] == 20 and doc["metrics"]["kid"]["num_gen"] == 20
    assert any("fid50k_full: --num-gen 20 generated images" in w for w in doc["warnings"])


def test_a_name_count_wins_over_a_trainer_default(tiny_net, ref_set):
    cfg = ScoreConfig(network=str(tiny_net), b=str(ref_set), metrics=["fid1k", "kid"], default_num_gen=8)
    assert [cfg.count(s) for s in cfg.specs] == [1000, 8]
    explicit = cfg.replace(num_gen=30)
    assert [explicit.count(s) for s in explicit.specs] == [30, 30]


def test_random_network_stand_in_is_labelled(ref_set, monkeypatch):
    for kind, factory in tiny_extractors().items():
        monkeypatch.setitem(score_mod.EXTRACTORS, kind, factory)
    r = _cli(["--network", "random:16", str(ref_set), "--metrics", "fid", "--num-gen", "4", "--device", "cpu", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["stand_ins"] == ["--network random:16"] and "random-init stand-in" in r.stderr
    assert doc["a"]["n"] == 4 and np.isfinite(doc["metrics"]["fid"]["value"])
