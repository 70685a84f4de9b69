"""Every metric computes with TF32 (and CPU reduced-precision matmuls) off, the process policy restored after.

The flags are process-wide, so a CPU test can turn them on (as a training run on Ampere does) and see
what each metric's computation runs under.
"""

import dataclasses

import pytest
import torch
from test_metric_registry import ref_set, tiny_extractors, tiny_net  # noqa: F401 - fixtures

from stylekit.device import tf32_state
from stylekit.metrics.features import EmbedderExtractor
from stylekit.metrics.registry import FAMILIES, MetricSpec, compute_metric
from stylekit.metrics.score import ScoreConfig, score_sets

OFF = (False, False, "highest")
ON = (True, True, "high")


@pytest.fixture
def tf32_on():
    saved = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    assert tf32_state() == ON
    yield
    torch.set_float32_matmul_precision(saved[0])
    torch.backends.cudnn.allow_tf32 = saved[1]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_computes_in_full_fp32(family, tf32_on, monkeypatch):
    seen = []

    def spy(ctx, spec):
        seen.append(tf32_state())
        return {"value": 1.0}

    monkeypatch.setitem(FAMILIES, family, dataclasses.replace(FAMILIES[family], compute=spy))
    assert compute_metric(None, MetricSpec(family, family)) == {"value": 1.0}
    assert seen == [OFF]
    assert tf32_state() == ON  # restored


def test_score_models_run_with_tf32_off(tiny_net, ref_set, tf32_on):  # noqa: F811 - fixtures
    seen = []

    def recording(fn):
        def run(x):
            seen.append(tf32_state())
            return fn(x)
        return run

    def stats(x):
        return torch.cat([x.mean((2, 3)), x.std((2, 3)), x[..., ::4, ::4].flatten(2).mean(2)], dim=1)

    ext = tiny_extractors()
    for kind in ("inception", "inception-logits", "lpips"):
        build = ext[kind]
        ext[kind] = lambda cfg, dev, build=build: _recorded(build(cfg, dev), seen)
    ext["style"] = lambda cfg, dev: EmbedderExtractor("tiny-style", recording(stats), 9, size=32)
    ext["vgg16"] = lambda cfg, dev: EmbedderExtractor("tiny-vgg", recording(stats), 9, size=32)
    metrics = ["fid", "kid", "is", "pr", "style", "ppl2_wend"]
    report = score_sets(ScoreConfig(network=str(tiny_net), a=str(ref_set), num_gen=16, batch=8, metrics=metrics,
                                    device="cpu", cache=False, kid_subsets=4, extractors=ext, seed=3))
    assert set(report.metrics) == set(metrics)
    assert len(seen) >= len(metrics) and set(seen) == {OFF}
    assert tf32_state() == ON


def _recorded(extractor, seen: list):
    """The extractor, each network it holds recording the TF32 state as it runs."""
    owner = getattr(extractor, "__self__", extractor)  # a bound method (LPIPS.features) runs its module
    modules = [owner] if isinstance(owner, torch.nn.Module) else [
        v for v in vars(owner).values() if isinstance(v, torch.nn.Module)]
    assert modules, extractor
    for module in modules:
        module.register_forward_pre_hook(lambda *_: seen.append(tf32_state()))
    return extractor
