"""Resume across --amp on/off and across hardware whose GradScaler is enabled (fp16 GPUs) or disabled ({}).

The CPU cannot run fp16 autocast, so the trainers' `grad_scaler` is swapped for one that is enabled or
not as the emulated hardware would have it; everything else is the real training loop and checkpoint.
"""

from pathlib import Path

import pytest
import torch

from stylekit.data.toy import generate_toy_styles
from stylekit.train.classifier import ClassifierConfig, train_classifier
from stylekit.train.pix2pix import Pix2PixConfig, train_pix2pix
from stylekit.train.runner import ScalerState

pytestmark = pytest.mark.usefixtures("one_thread")
DIRECTIONS = [(True, False), (False, True)]  # (scaler enabled when saved, when resumed)


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scaler") / "toy"
    generate_toy_styles(out, size=32, per_style=6, styles=3, seed=0)
    return out


def _hardware(monkeypatch, module, enabled: bool) -> None:
    """`module` sees hardware whose --amp needs a GradScaler (fp16) or not."""
    monkeypatch.setattr(module, "grad_scaler", lambda device, amp: torch.amp.GradScaler("cpu", enabled=enabled))
    monkeypatch.setattr(module, "needs_grad_scaler", lambda device, amp: enabled, raising=False)


def test_scaler_state_round_trips_and_accepts_the_other_kind():
    on = torch.amp.GradScaler("cpu", init_scale=1024.0)
    on.load_state_dict({**on.state_dict(), "scale": 256.0})
    fresh = ScalerState(torch.amp.GradScaler("cpu", init_scale=1024.0))
    fresh.load_state_dict(ScalerState(on).state_dict())
    assert fresh.scaler.get_scale() == 256.0
    fresh.load_state_dict({})  # saved by a disabled scaler: keeps what it has
    assert fresh.scaler.get_scale() == 256.0
    off = ScalerState(torch.amp.GradScaler("cpu", enabled=False))
    assert off.state_dict() == {}
    off.load_state_dict(on.state_dict())  # nothing to restore
    assert not off.scaler.is_enabled()


@pytest.mark.parametrize(("saved", "resumed"), DIRECTIONS)
def test_classifier_resumes_across_scaler(toy, tmp_path, monkeypatch, saved, resumed):
    import stylekit.train.classifier as C

    tiny = dict(data=toy, out=tmp_path / "run", batch=6, size=32, seed=0, workers=0, device="cpu", loss="ce", check_images=False)
    _hardware(monkeypatch, C, saved)
    first = train_classifier(ClassifierConfig(epochs=1, amp=saved, **tiny))
    _hardware(monkeypatch, C, resumed)
    second = train_classifier(ClassifierConfig(epochs=2, amp=resumed, **tiny))
    assert not first.resumed and second.resumed and second.steps == 2 * first.steps


@pytest.mark.parametrize(("saved", "resumed"), DIRECTIONS)
def test_pix2pix_resumes_across_scaler(toy, tmp_path, monkeypatch, saved, resumed):
    import stylekit.train.pix2pix as P

    tiny = dict(data=toy, out=tmp_path / "run", size=32, ngf=4, ndf=4, style_dim=8, refs=1, batch=4, decay_epochs=0,
                device="cpu", seed=0, val_fraction=0.25, samples=1)
    _hardware(monkeypatch, P, saved)
    first = train_pix2pix(Pix2PixConfig(epochs=1, amp=saved, **tiny))
    _hardware(monkeypatch, P, resumed)
    second = train_pix2pix(Pix2PixConfig(epochs=2, amp=resumed, **tiny))
    assert second.resumed_from_step == first.steps > 0 and second.steps == 2 * first.steps
