"""The optimisation loop shared by every stage: L-BFGS or Adam over the image, counted in steps.

One step = one evaluation of the loss and its gradient (one VGG forward + backward), the unit
jcjohnson/neural-style and the PyTorch tutorial count. Adam makes one update per step. L-BFGS uses a
strong-Wolfe line search, so one L-BFGS iteration costs one or more steps (usually one once its
history has warmed up; a few while it finds the scale of the first step); the step budget is exact.

L-BFGS minimises loss / (loss at the first step): the optimum is unchanged, but torch's absolute
thresholds (curvature pairs need y.s > 1e-10) no longer depend on how large the loss happens to be,
which varies by orders of magnitude with the weights, the layers and the VGG weights in use.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from stylekit.errors import StylekitError
from stylekit.io.console import get_console

LossFn = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]
LBFGS_HISTORY = 100  # jcjohnson's default (optim.lbfgs nCorrection)


@dataclass
class StageLog:
    """What one stage did: its size, step count, wall time and the loss terms at start and end."""

    size: list[int]  # [width, height]
    steps: int
    seconds: float
    loss_start: dict[str, float] = field(default_factory=dict)
    loss_end: dict[str, float] = field(default_factory=dict)
    lbfgs_iterations: int | None = None

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / max(self.steps, 1)

    def to_dict(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "size": self.size,
            "steps": self.steps,
            "seconds": round(self.seconds, 4),
            "seconds_per_step": round(self.seconds_per_step, 5),
            "loss_start": self.loss_start,
            "loss_end": self.loss_end,
        }
        if self.lbfgs_iterations is not None:
            doc["lbfgs_iterations"] = self.lbfgs_iterations
        return doc


def _floats(terms: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(v.detach()) for k, v in terms.items()}


class _Budget(Exception):
    """Raised inside the closure when the step budget is spent (ends a line search cleanly)."""


def optimise(
    variable: torch.Tensor,
    render: Callable[[torch.Tensor], torch.Tensor],
    loss_fn: LossFn,
    optimizer: str,
    steps: int,
    lr: float,
    description: str,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
) -> StageLog:
    """Minimise `loss_fn(render(variable))` in place with exactly `steps` evaluations.

    `on_step(k, variable)` runs after evaluation k with the variable as it was evaluated.
    """
    first: dict[str, float] = {}
    state = {"evals": 0, "scale": 1.0, "best": math.inf}
    best = variable.detach().clone()
    height, width = variable.shape[-2:]

    with get_console().progress(steps, description) as task:

        def evaluate() -> torch.Tensor:
            if state["evals"] >= steps:
                raise _Budget
            total, terms = loss_fn(render(variable))
            value = float(total.detach())
            if not math.isfinite(value):
                raise StylekitError(
                    f"the loss became {value} at step {state['evals'] + 1} ({description})",
                    hint="lower --lr or the loss weights, or leave out --amp",
                )
            state["evals"] += 1
            if not first:
                first.update(_floats(terms))
                state["scale"] = 1.0 / value if optimizer == "lbfgs" and value > 0 else 1.0
            if value < state["best"]:  # a line-search trial may be worse than the accepted point
                state["best"] = value
                best.copy_(variable.detach())
            task.update(loss=value)
            task.advance()
            if on_step is not None:
                on_step(state["evals"], variable)
            return total * state["scale"]

        start = time.perf_counter()
        iterations = None
        if optimizer == "lbfgs":
            opt = torch.optim.LBFGS(
                [variable], lr=1.0, max_iter=steps, max_eval=steps + 1, history_size=LBFGS_HISTORY,
                tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe",
            )

            def closure() -> torch.Tensor:
                opt.zero_grad(set_to_none=False)
                loss = evaluate()
                loss.backward()
                return loss

            while state["evals"] < steps:
                before = state["evals"]
                try:
                    opt.step(closure)
                except _Budget:
                    break
                if state["evals"] - before <= 1:  # converged or line search found nothing: stop early
                    break
            iterations = int(opt.state[variable].get("n_iter", 0))
            with torch.no_grad():
                variable.copy_(best)
        else:
            adam = torch.optim.Adam([variable], lr=lr)
            for _ in range(steps):
                adam.zero_grad(set_to_none=False)
                evaluate().backward()
                adam.step()
        seconds = time.perf_counter() - start
    with torch.no_grad():
        _, end_terms = loss_fn(render(variable))
    return StageLog(
        size=[int(width), int(height)], steps=state["evals"], seconds=seconds, loss_start=first,
        loss_end=_floats(end_terms), lbfgs_iterations=iterations,
    )
