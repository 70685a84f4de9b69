"""TensorBoard event files from the shared runner, read back with tensorboard's own reader."""

import sys

import pytest
import torch
from PIL import Image

from stylekit.errors import BadInput
from stylekit.io.rundir import RunDir
from stylekit.train import TrainRunner

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def _read(folder):
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "histograms": 0})
    acc.Reload()
    return acc


def _run(out, losses, *, start_checkpoint_at=None, image=None):
    net = torch.nn.Linear(3, 2)
    with RunDir(out) as run_dir, TrainRunner(run_dir, config={"lr": 0.1}, total=10, handle_signals=False) as runner:
        runner.register("model", net)
        runner.resume()
        for step, loss in losses:
            runner.log_metrics(step, loss=loss, kind="train", note=None)
            if step == start_checkpoint_at:
                runner.save(step)
        if image is not None:
            runner.log_image(losses[-1][0], "samples/grid", image)
    return run_dir


def test_scalars_images_written_and_readable(tmp_path):
    png = tmp_path / "grid.png"
    Image.new("RGB", (24, 16), (200, 10, 10)).save(png)
    _run(tmp_path / "run", [(1, 0.5), (2, 0.25)], image=png)
    acc = _read(tmp_path / "run")
    tags = acc.Tags()
    assert tags["scalars"] == ["loss"]  # strings and None stay in metrics.jsonl only
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(1, 0.5), (2, 0.25)]
    (img,) = acc.Images("samples/grid")
    assert img.step == 2 and (img.width, img.height) == (24, 16)
    assert tags["histograms"] == []  # off by default


def test_histograms_on_request_and_resume_purges_dropped_steps(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEKIT_TENSORBOARD", "histograms")
    out = tmp_path / "run"
    _run(out, [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)], start_checkpoint_at=2)
    # the rerun resumes at step 2: metrics.jsonl drops steps 3-4, and so does TensorBoard
    _run(out, [(3, 30.0), (4, 40.0)])
    acc = _read(out)
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]
    assert {"model/weight", "model/bias"} <= set(acc.Tags()["histograms"])


def test_off_and_bad_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEKIT_TENSORBOARD", "off")
    _run(tmp_path / "off", [(1, 1.0)])
    assert not list((tmp_path / "off").glob("events.out.tfevents.*"))
    monkeypatch.setenv("STYLEKIT_TENSORBOARD", "loud")
    with pytest.raises(BadInput, match="STYLEKIT_TENSORBOARD"):
        _run(tmp_path / "bad", [(1, 1.0)])


def test_without_tensorboard_one_info_line_and_no_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import now raises ImportError
    run_dir = _run(tmp_path / "run", [(1, 1.0), (2, 0.5)], start_checkpoint_at=2, image=None)
    assert not list(run_dir.path.glob("events.out.tfevents.*"))
    log = (run_dir.path / "log.txt").read_text()
    assert log.count("tensorboard is not installed") == 1
    assert (run_dir.path / "metrics.jsonl").read_text().count('"loss"') == 2
