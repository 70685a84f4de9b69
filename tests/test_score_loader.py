"""Feature extraction's decoding: the background decoding thread (--workers auto on CPU), the serial
path and DataLoader processes give bit-identical features, batches and skip reports."""

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from stylekit.data.imageset import open_image_set
from stylekit.metrics import features as feat
from stylekit.metrics.features import auto_loader_workers, extract_features
from stylekit.metrics.fid import InceptionExtractor


class RecordingNet(torch.nn.Module):
    """A small random conv net on clean-fid's input that records its batch sizes and calling thread."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, kernel_size=9, stride=8)
        self.batches: list[int] = []
        self.threads: set[str] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.shape[0])
        self.threads.add(threading.current_thread().name)
        return torch.relu(self.conv(x / 255.0)).mean((2, 3))


@pytest.fixture(scope="module")
def image_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader") / "set"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(11):
        Image.fromarray(rng.integers(0, 256, (40 + i, 48, 3), dtype=np.uint8)).save(root / f"{i:02d}.png")
    (root / "05b.png").write_bytes(b"not an image")
    return open_image_set(root)


def _run(image_set, workers):
    net = RecordingNet()
    ext = InceptionExtractor("clean", "cpu", model=net, name="recording", dim=8)
    return extract_features(image_set, ext, cache=False, batch_size=4, workers=workers), net


def test_decoding_thread_gives_the_serial_features_bit_for_bit(image_set):
    serial, serial_net = _run(image_set, 0)
    threaded, threaded_net = _run(image_set, None)  # auto on CPU: the decoding thread
    assert serial.features.shape == (11, 8) and serial.features.dtype == np.float32
    assert np.array_equal(serial.features, threaded.features)
    assert [it.rel for it in serial.items] == [it.rel for it in threaded.items]
    assert serial_net.batches == threaded_net.batches == [4, 3, 4]  # 12 files; 05b.png (2nd batch) is undecodable
    assert [(s.path, s.reason) for s in serial.report.skipped] == [(s.path, s.reason) for s in threaded.report.skipped]
    assert len(threaded.report.skipped) == 1 and "05b.png" in threaded.report.skipped[0].path
    assert threaded_net.threads == {threading.current_thread().name}  # the model runs in the caller's thread


def test_decoding_thread_decodes_ahead_of_the_model(image_set, monkeypatch):
    """While the model runs on the first batch, the second one is being decoded by the other thread."""
    decoding_second = threading.Event()
    decoders: set[str] = set()
    getitem = feat.ItemDataset.__getitem__

    def spy(self, i):
        decoders.add(threading.current_thread().name)
        if i == 4:
            decoding_second.set()
        return getitem(self, i)

    monkeypatch.setattr(feat.ItemDataset, "__getitem__", spy)
    seen: list[bool] = []
    net = RecordingNet()
    forward = net.forward

    def waiting_forward(x):
        if not seen:  # first batch: the decoding of the second must start while this one runs
            seen.append(decoding_second.wait(timeout=30))
        return forward(x)

    net.forward = waiting_forward
    extract_features(image_set, InceptionExtractor("clean", "cpu", model=net, name="r", dim=8), cache=False,
                     batch_size=4, workers=None)
    assert seen == [True] and decoders == {"stylekit-decode_0"}


def test_loader_processes_match_too_and_auto_is_per_device(image_set):
    serial, _ = _run(image_set, 0)
    procs, _ = _run(image_set, 1)
    assert np.array_equal(serial.features, procs.features)
    assert auto_loader_workers("cpu") is None and auto_loader_workers(None) is None
    assert 1 <= auto_loader_workers("cuda") <= 8


def test_empty_set_and_all_cached_never_start_a_thread(image_set, tmp_path):
    net = RecordingNet()
    ext = InceptionExtractor("clean", "cpu", model=net, name="recording-cache", dim=8)
    first = extract_features(image_set, ext, cache=tmp_path, batch_size=4, workers=None)
    before = threading.active_count()
    again = extract_features(image_set, ext, cache=tmp_path, batch_size=4, workers=None)
    assert again.hits == 12 and again.computed == 0 and np.array_equal(first.features, again.features)
    assert threading.active_count() == before and net.batches == [4, 3, 4]


@pytest.mark.numerics
def test_inception_runs_channels_last_on_cpu_with_the_same_features(image_set):
    net = RecordingNet()
    formats: list[bool] = []
    forward = net.forward
    net.forward = lambda x: (formats.append(x.is_contiguous(memory_format=torch.channels_last)), forward(x))[1]
    ext = InceptionExtractor("clean", "cpu", model=net, name="cl", dim=8)
    x = torch.rand(3, 3, 299, 299) * 255
    with torch.inference_mode():
        got, plain = ext(x), forward(x.contiguous())
    assert formats == [True]
    assert torch.allclose(got, plain, rtol=1e-5, atol=1e-6) and got.shape == (3, 8)
