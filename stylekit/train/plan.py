"""The first line every trainer prints: what it is about to do (epochs, steps) and when it will be done."""

from __future__ import annotations

from stylekit.io.console import get_console


def log_plan(trainer: str, *, epochs: float | None, steps_per_epoch: int | None, total_steps: int,
             done_steps: int = 0, detail: str = "") -> str:
    """Log "<trainer>: plan ..." and return the line. The ETA is measured: the progress lines that follow
    carry it from the first timed steps on (nothing is known about the machine's speed before that)."""
    parts = []
    if epochs is not None:
        parts.append(f"{epochs:g} epochs" + (f" x {steps_per_epoch} steps" if steps_per_epoch is not None else ""))
    parts.append(f"{total_steps} steps in total")
    if done_steps:
        parts.append(f"{done_steps} already done")
    line = f"{trainer}: plan {', '.join(parts)}" + (f" ({detail})" if detail else "") + "; ETA on the progress lines"
    get_console().log(line)
    return line
