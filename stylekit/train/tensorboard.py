"""TensorBoard event files in a run directory (`tensorboard --logdir runs/`), when the package is installed.

metrics.jsonl stays the source of truth: every record `TrainRunner.log_metrics` appends there is mirrored
here as scalars (same names, same step), sample grids the trainers write become images, and with
`STYLEKIT_TENSORBOARD=histograms` every registered module's parameters are added as histograms at each
checkpoint. `STYLEKIT_TENSORBOARD=off` writes nothing. Only rank 0 writes; without the `tensorboard`
package (`pip install 'stylekit[tensorboard]'`) the run logs one info line and goes on.

torch.utils.tensorboard.SummaryWriter does the writing (the event format, its CRCs and file rotation are
tensorboard's business, not ours).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch

from stylekit.errors import BadInput
from stylekit.io.console import get_console

ENV = "STYLEKIT_TENSORBOARD"
MODES = ("on", "off", "histograms")


def tensorboard_mode() -> str:
    mode = os.environ.get(ENV, "on").strip().lower() or "on"
    if mode in ("1", "true", "yes"):
        return "on"
    if mode in ("0", "false", "no"):
        return "off"
    if mode not in MODES:
        raise BadInput(f"{ENV}={mode!r} is not one of {', '.join(MODES)}", hint=f"unset {ENV} or set it to on, off or histograms")
    return mode


class TensorBoardLog:
    """A SummaryWriter on OUT (rank 0), or a no-op when disabled, not installed or not rank 0."""

    def __init__(self, folder: Path, is_main: bool) -> None:
        self.folder = folder
        self._writer: Any = None
        mode = tensorboard_mode()
        self.histograms = mode == "histograms"
        self._available = is_main and mode != "off"

    def open(self, resume_step: int = 0) -> None:
        """Start the writer (rank 0). On a resume, events after `resume_step` from the interrupted process
        are purged, as resume drops those metrics.jsonl records."""
        if not self._available or self._writer is not None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # torch's writer needs the tensorboard package
            self._available = False
            get_console().log("tensorboard is not installed: no event files (pip install 'stylekit[tensorboard]'); "
                              "metrics.jsonl has every value")
            return
        self._writer = SummaryWriter(log_dir=str(self.folder), flush_secs=30, purge_step=resume_step + 1 if resume_step else None)

    @property
    def active(self) -> bool:
        return self._writer is not None

    def scalars(self, step: int, values: dict[str, Any], walltime: float | None = None) -> None:
        if self._writer is None:
            return
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                continue
            self._writer.add_scalar(key, value, global_step=step, walltime=walltime)
        self._writer.flush()

    def image(self, step: int, tag: str, path: Path) -> None:
        """Add a PNG the trainer wrote (a sample grid) as an image."""
        if self._writer is None:
            return
        import numpy as np
        from PIL import Image

        with Image.open(path) as img:
            array = np.asarray(img.convert("RGB"))
        self._writer.add_image(tag, array, global_step=step, dataformats="HWC")
        self._writer.flush()

    def histogram_modules(self, step: int, modules: dict[str, torch.nn.Module]) -> None:
        if self._writer is None or not self.histograms:
            return
        for name, module in modules.items():
            for pname, p in module.named_parameters():
                self._writer.add_histogram(f"{name}/{pname}", p.detach().float().cpu(), global_step=step)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
