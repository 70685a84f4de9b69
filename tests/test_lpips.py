"""LPIPS-VGG16: metric properties on random weights, equality with the reference lpips code, safe weight loading."""

import zipfile

import pytest
import torch

from stylekit.errors import BadInput, MissingResource
from stylekit.nets import lpips as lp

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def net():
    return lp.LPIPS(None, None, seed=0)


def _images(n: int = 3, size: int = 48, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def test_distance_is_zero_symmetric_and_positive(net):
    a, b = _images(seed=0), _images(seed=1)
    d_ab, d_ba, d_aa = net(a, b), net(b, a), net(a, a)
    assert d_aa.abs().max() < 1e-10
    assert torch.allclose(d_ab, d_ba, rtol=1e-5, atol=1e-8)
    assert (d_ab > 1e-4).all()
    # features(): squared distance between rows is the LPIPS distance
    fa, fb = net.features(a), net.features(b)
    assert torch.allclose((fa - fb).square().sum(1), d_ab, rtol=1e-5)
    # a smaller perturbation gives a smaller distance
    near = (a + 0.05 * (b - a)).clamp(-1, 1)
    assert (net(a, near) < d_ab).all()


def test_gradient_reaches_the_input(net):
    a = _images(1).requires_grad_(True)
    net(a, _images(1, seed=5)).sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0


@pytest.mark.numerics
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_matches_reference_lpips_package(tmp_path):
    """With the same (random) VGG16 and the package's lin weights, the numbers equal lpips.LPIPS."""
    lpips_pkg = pytest.importorskip("lpips")
    ref = lpips_pkg.LPIPS(net="vgg", pnet_rand=True, verbose=False).eval()  # pnet_rand: no ImageNet download
    state = {}
    for sl in (ref.net.slice1, ref.net.slice2, ref.net.slice3, ref.net.slice4, ref.net.slice5):
        for name, module in sl.named_children():
            if isinstance(module, torch.nn.Conv2d):
                state[f"features.{name}.weight"] = module.weight.detach().clone()
                state[f"features.{name}.bias"] = module.bias.detach().clone()
    vgg_file = tmp_path / "vgg16-random.pth"
    torch.save(state, vgg_file)
    mine = lp.load_lpips(vgg_file)  # lin weights from the installed package
    a, b = _images(2, 64, 3), _images(2, 64, 4)
    with torch.no_grad():
        assert torch.allclose(mine(a, b), ref(a, b).flatten(), rtol=1e-4, atol=1e-6)


def test_single_combined_file_needs_nothing_else(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    monkeypatch.setattr(lp, "packaged_lin_path", lambda: None)
    src = lp.LPIPS(None, None, seed=3)
    tensors = {f"features.{k}": v for k, v in src.vgg.body.state_dict().items()}
    for k in range(5):
        tensors[f"lin{k}.model.1.weight"] = getattr(src, f"lin{k}_sqrt").square().contiguous()
    path = tmp_path / "lpips-vgg16.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    loaded = lp.load_lpips(path)
    a, b = _images(1, 32, 0), _images(1, 32, 1)
    assert torch.allclose(loaded(a, b), src(a, b), rtol=1e-5)


def test_missing_weights_offline_exit_3_with_the_command(tmp_path, monkeypatch):
    monkeypatch.setattr(lp, "packaged_lin_path", lambda: None)
    with pytest.raises(MissingResource) as err:
        lp.load_lpips(None)
    assert err.value.exit_code == 3 and err.value.fetch_command == lp.LIN_FETCH_COMMAND
    # lin weights present, VGG16 not cached and offline -> the registry's download command
    lin_file = tmp_path / "vgg.pth"
    torch.save({f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(lp.LPIPS_CHANNELS)}, lin_file)
    monkeypatch.setattr(lp, "packaged_lin_path", lambda: lin_file)
    with pytest.raises(MissingResource) as err:
        lp.load_lpips(None)
    assert err.value.fetch_command == "stylekit download vgg16"


def test_torchscript_archive_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "vgg16.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("vgg16/data.pkl", b"\x80\x02}q\x00.")
        zf.writestr("vgg16/constants.pkl", b"\x80\x02)q\x00.")
        zf.writestr("vgg16/code/__torch__.py", "def forward(self): ...")
    from stylekit.io.state_dict import is_torchscript_archive

    assert is_torchscript_archive(path)
    with pytest.raises(BadInput, match="TorchScript"):
        lp.load_lpips(path)
    with pytest.raises(MissingResource, match="vgg16"):  # the registry name: lin weights + registry vgg16 (offline here)
        lp.load_lpips("lpips-vgg16")


def test_bad_files_are_bad_input(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a weights file at all")
    with pytest.raises(BadInput):
        lp.load_lpips(junk)
    with pytest.raises(BadInput):
        lp.load_lpips(tmp_path / "missing.pth")
    partial = tmp_path / "partial.pth"
    torch.save({"lin0.model.1.weight": torch.rand(1, 64, 1, 1)}, partial)
    with pytest.raises(BadInput, match="incomplete"):
        lp.load_lpips(partial)
