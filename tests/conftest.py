"""Shared test set-up: CPU only, offline, small thread count, isolated cache."""

import os

os.environ.setdefault("STYLEKIT_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Each test gets its own $STYLEKIT_HOME so caches never leak between tests or into ~/.cache."""
    home = tmp_path_factory.mktemp("stylekit-home")
    monkeypatch.setenv("STYLEKIT_HOME", str(home))
    monkeypatch.setenv("STYLEKIT_OFFLINE", "1")
    yield home


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for modules of tiny networks: threads gain nothing there and only contend on a
    shared 2-core machine. Use with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def random_vgg19_file(tmp_path_factory):
    """A seeded random-init VGG19 saved as a torchvision-style state dict (for --vgg-weights offline)."""
    import torch

    from stylekit.nets.vgg import VGGFeatures

    path = tmp_path_factory.mktemp("vgg") / "vgg19-random.pth"
    body = VGGFeatures("vgg19", ["pool5"], weights=None, seed=0).body.state_dict()
    torch.save({f"features.{k}": v for k, v in body.items()}, path)
    return path
