"""train-pix2pix --net-g resnet9, --preprocess, --flip/--no-flip, and transfer's index.html results page."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.data.images import pil_to_tensor
from stylekit.data.pairs import build_pair_data, discover_pairs
from stylekit.data.toy import generate_toy_styles
from stylekit.errors import BadInput

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = ["--ngf", "8", "--ndf", "8", "--style-dim", "16", "--device", "cpu", "--seed", "0", "--val-fraction", "0.25",
        "--samples", "2"]


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("p2p-opts") / "toy"
    generate_toy_styles(out, size=40, per_style=4, styles=2, seed=0)
    return out


# ------------------------------------------------------------------------------------- networks
def test_resnet9_matches_junyanz_and_takes_references():
    from stylekit.nets.resnet_gen import ResnetGenerator
    from stylekit.nets.unet import GeneratorConfig, RefUNet, inference_mode

    # junyanz resnet_9blocks, instance norm (convs with bias): "[Network G] ... 11.378 M"
    assert sum(p.numel() for p in ResnetGenerator(256, norm="instance").parameters()) == 11_378_179
    assert ResnetGenerator(96, ngf=4)(torch.randn(1, 3, 96, 96)).shape == (1, 3, 96, 96)  # not a power of two
    torch.manual_seed(0)
    for inject in ("adain", "concat"):
        g = RefUNet(GeneratorConfig(size=32, ngf=4, style_dim=8, refs=2, ref_size=32, norm="instance",
                                    ref_inject=inject, net_g="resnet9"))
        assert any(k.startswith("resnet9.blocks.8.") for k in g.state_dict()) and not hasattr(g, "unet")
        a, r1, r2 = torch.randn(1, 3, 32, 32), torch.rand(1, 2, 3, 32, 32), torch.rand(1, 2, 3, 32, 32) * 0.2
        with inference_mode(g):
            if inject == "adain":
                assert torch.equal(g(a, r1), g(a, r2))  # zero-initialised heads: starts as plain pix2pix
                for m in g.modules():
                    if type(m).__name__ == "StyleMod":
                        torch.nn.init.normal_(m.linear.weight, 0, 0.5)
            assert not torch.allclose(g(a, r1), g(a, r2))
        y = g(a, r1)
        y.mean().backward()
        assert y.shape == (1, 3, 32, 32) and g.encoder.cnn.stages[0][0].weight.grad is not None


# ----------------------------------------------------------------------------------------- data
def test_preprocess_crop_none_and_flip(toy):
    pairs, _ = discover_pairs(toy)
    crop = build_pair_data(toy, 32, refs=0, val_fraction=0.25, seed=0, preprocess="crop")
    item = crop.train[0]
    pair = crop.train.pairs[0]
    a_full = pil_to_tensor(Image.open(pair.a).convert("RGB")) * 2 - 1
    # a 32x32 window of the unresized 40x40 image (possibly mirrored): find it
    windows = [a_full[:, y:y + 32, x:x + 32] for y in range(9) for x in range(9)]
    assert any(torch.equal(item["a"], w) or torch.equal(item["a"], w.flip(-1)) for w in windows)
    v = crop.val[0]  # held out: the centre crop
    v_full = pil_to_tensor(Image.open(crop.val.pairs[0].a).convert("RGB")) * 2 - 1
    assert torch.equal(v["a"], v_full[:, 4:36, 4:36])

    none = build_pair_data(toy, 40, refs=0, val_fraction=0.25, seed=0, preprocess="none", flip=False)
    for epoch in range(3):
        none.train.set_epoch(epoch)
        exact = pil_to_tensor(Image.open(none.train.pairs[1].a).convert("RGB")) * 2 - 1
        assert torch.equal(none.train[1]["a"], exact)  # no resize, no crop, never flipped
    flips = build_pair_data(toy, 40, refs=0, val_fraction=0.25, seed=0, preprocess="none")
    seen = set()
    for epoch in range(8):
        flips.train.set_epoch(epoch)
        seen.add(torch.equal(flips.train[1]["a"], exact))
    assert seen == {True, False}  # --flip (default) mirrors some epochs

    wrong = build_pair_data(toy, 32, refs=0, val_fraction=0.25, seed=0, preprocess="none")
    with pytest.raises(BadInput, match=r"40x40, --preprocess none needs exactly 32x32"):
        wrong.train[0]
    assert len(pairs) == 8


# ------------------------------------------------------------------------------------ CLI + page
def test_cli_resnet9_crop_no_flip_then_results_page(toy, tmp_path):
    out = tmp_path / "run"
    res = _cli("train-pix2pix", toy, "--out", out, "--refs", "2", "--size", "32", "--net-g", "resnet9",
               "--preprocess", "crop", "--no-flip", "--epochs", "1", "--decay-epochs", "0", "--json", *TINY)
    assert res.exit_code == 0, res.output
    config = json.loads((out / "config.json").read_text())
    assert (config["net_g"], config["preprocess"], config["flip"]) == ("resnet9", "crop", False)
    assert json.loads((out / "generator.json").read_text())["generator"]["net_g"] == "resnet9"

    targets = tmp_path / "targets"
    targets.mkdir()
    for img in sorted((toy / "pop").glob("*.png"))[:2]:  # targets for two of the content images only
        Image.open(img).save(targets / img.name)
    styles = sorted((toy / "pop").glob("*.png"))[2:4]
    res = _cli("transfer", toy / "content", *styles, "--method", "pix2pix", "--model", out, "--targets", targets,
               "--out", tmp_path / "results", "--device", "cpu", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    page = tmp_path / "results" / "index.html"
    assert doc["run"]["results_page"] == str(page) and doc["done"] == 4
    with_target = [i for i in doc["items"] if i.get("target")]
    assert len(with_target) == 2 and all(0 < i["l1_target"] < 1 for i in with_target)
    first = with_target[0]
    expect = np.abs(np.asarray(Image.open(first["output"]).convert("RGB"), np.float32)
                    - np.asarray(Image.open(first["target"]).convert("RGB").resize((32, 32), Image.Resampling.BICUBIC), np.float32))
    assert first["l1_target"] == pytest.approx(expect.mean() / 255, abs=1e-5)
    text = page.read_text()
    assert text.count("<tr><td>") == 4 and text.count("no target") == 2
    assert "<th>input</th><th>references</th><th>output</th><th>target</th>" in text
    assert '<img src="../toy/content/00000.png"' in text or "content/00000.png" in text
    for src in __import__("re").findall(r'src="([^"]+)"', text):  # every link resolves from the page
        assert (page.parent / src).resolve().is_file(), src


def test_bad_options_exit_2(toy, tmp_path):
    base = ["train-pix2pix", toy, "--out", tmp_path / "r", "--refs", "0", "--epochs", "1", "--decay-epochs", "0", *TINY]
    for extra, words in ((["--net-g", "resnet50", "--size", "32"], "--net-g"),
                         (["--preprocess", "scale_width", "--size", "32"], "--preprocess"),
                         (["--net-g", "resnet9", "--size", "30"], "multiple of 4")):
        res = _cli(*base, *extra)
        assert res.exit_code == 2 and words in res.output, res.output
    assert not (tmp_path / "r").exists()
    res = _cli("transfer", toy / "content" / "00000.png", toy / "pop" / "00000.png", "--method", "pix2pix",
               "--model", tmp_path / "r", "--targets", toy / "pop", "--out", tmp_path / "x.png")
    assert res.exit_code == 2 and "--targets" in res.output


@pytest.mark.numerics
def test_fused_adam_and_channels_last_networks_train_like_the_plain_ones():
    """The speed settings (fused Adam, NHWC networks and images) change no result beyond rounding."""
    from stylekit.nets.patchgan import PatchGAN
    from stylekit.train.pix2pix import adam, gan_loss

    def run(fast: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        d = PatchGAN(6, 8, 2, "batch")
        g = torch.Generator().manual_seed(1)
        a, b = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
        if fast:
            d.to(memory_format=torch.channels_last)
            a, b = a.contiguous(memory_format=torch.channels_last), b.contiguous(memory_format=torch.channels_last)
            opt = adam(list(d.parameters()), 2e-4, 0.5, torch.device("cpu"))
            assert opt.defaults["fused"]
        else:
            opt = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            gan_loss(d(a, b), True, "vanilla").backward()
            opt.step()
        return [p.detach().contiguous() for p in d.parameters()]

    for fast, plain in zip(run(True), run(False), strict=True):
        torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5)
