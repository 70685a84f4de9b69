"""transfer --normalize-gradients (jcjohnson): per-layer L1-normalised gradients, same loss values."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.configs.transfer import TransferConfig
from stylekit.transfer.gatys import GatysStylizer
from stylekit.transfer.losses import normalize_gradient

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = ["--style-layers", "relu1_1,relu2_1", "--content-layers", "relu2_1", "--no-amp", "--device", "cpu"]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    from stylekit.nets.vgg import VGGFeatures

    root = tmp_path_factory.mktemp("nst-norm")
    body = VGGFeatures("vgg19", ["relu2_1"], weights=None, seed=0).body.state_dict()
    torch.save({f"features.{k}": v for k, v in body.items()}, root / "vgg.pth")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / "content.png")
    sy, sx = np.mgrid[0:32, 0:32]
    Image.fromarray(np.stack([(sx // 4 % 2) * 255, sy * 8, np.full_like(sx, 90)], -1).astype(np.uint8)).save(root / "style.png")
    return root


def test_backward_is_l1_normalised_times_weight():
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    c = torch.randn(2, 3, 4, 4)
    y = normalize_gradient(x, 3.0)
    assert torch.equal(y, x)
    (y * c * 1000).sum().backward()  # the raw scale of the loss does not matter, only its direction
    torch.testing.assert_close(x.grad, 3.0 * c / c.abs().sum())
    z = torch.randn(5, requires_grad=True)
    (normalize_gradient(z, 0.0) * 7).sum().backward()
    assert torch.equal(z.grad, torch.zeros(5))


def _grad_norms(assets, normalize: bool, style_weight: float) -> tuple[float, dict[str, float]]:
    cfg = TransferConfig(content=assets / "content.png", styles=[assets / "style.png"], out=assets / "o.png",
                         content_layers=["relu2_1"], style_layers=["relu1_1", "relu2_1"], vgg_weights=str(assets / "vgg.pth"),
                         device="cpu", content_weight=5, style_weight=style_weight, tv_weight=0,
                         optimizer="adam", normalize_gradients=normalize)
    st = GatysStylizer(cfg)
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    content = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        c_targets = {"relu2_1": st.vgg(content)["relu2_1"]}
    s_targets = st._style_grams(32, None)
    total, terms = st._loss_fn([c_targets], [s_targets])(image)  # one target dict per image
    total.backward()
    return float(image.grad.abs().sum()), {k: float(v.detach()) for k, v in terms.items()}


def test_normalised_gradients_keep_losses_and_let_the_weights_set_the_balance(assets):
    g_plain, t_plain = _grad_norms(assets, False, 100.0)
    g_norm, t_norm = _grad_norms(assets, True, 100.0)
    assert t_plain == t_norm  # the option changes gradients only, never the reported loss
    # Raw Gram-loss gradients are ~1e-6 of the content ones on [0, 1] images: without normalisation a
    # 1e4 x larger style weight barely changes the push; with it, each layer pushes with its weight.
    g_plain_big, _ = _grad_norms(assets, False, 1e6)
    g_norm_big, _ = _grad_norms(assets, True, 1e6)
    assert g_plain_big / g_plain < 10
    assert g_norm_big / g_norm > 1000


def test_cli_option_runs_and_is_recorded(assets, tmp_path):
    args = ["transfer", assets / "content.png", assets / "style.png", "--vgg-weights", assets / "vgg.pth", "--size", "32",
            "--steps", "4", "--optimizer", "adam", *FAST, "--json", "-q"]
    a = CliRunner().invoke(app, [str(x) for x in [*args, "--out", tmp_path / "a.png", "--normalize-gradients"]])
    b = CliRunner().invoke(app, [str(x) for x in [*args, "--out", tmp_path / "b.png"]])
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    da, db = json.loads(a.stdout), json.loads(b.stdout)
    assert da["config"]["normalize_gradients"] is True and db["config"]["normalize_gradients"] is False
    sa, sb = da["items"][0]["stages"][0], db["items"][0]["stages"][0]
    assert sa["loss_start"] == sb["loss_start"] and sa["loss_end"] != sb["loss_end"]


def test_lbfgs_with_normalised_gradients_is_refused(assets, tmp_path):
    res = CliRunner().invoke(app, [str(x) for x in ["transfer", assets / "content.png", assets / "style.png", "--out",
                                                    tmp_path / "o.png", "--normalize-gradients", *FAST]])
    assert res.exit_code == 2 and "--optimizer adam" in res.output and not (tmp_path / "o.png").exists()
