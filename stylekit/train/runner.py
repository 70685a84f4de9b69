"""The shared training runner: checkpoints, auto-resume, signals, NaN guard, metrics and seeding.

Every trainer (classifier, pix2pix, stylegan) owns its loop; the runner owns what they share:

    runner = TrainRunner(run_dir, dist, config=cfg, keep=3, total=steps)
    runner.register("G", G); runner.register("opt_G", opt_G); ...   # anything with state_dict()
    state = runner.resume()                                        # {} on a new run
    ... loop ...
        values = runner.check_finite(step, loss=loss)              # NonFiniteLoss if nan/inf
        runner.log_metrics(step, **values)                         # rank 0: metrics.jsonl + log line
        runner.save(step, epoch=epoch, batch=i + 1)                # periodic checkpoint
        runner.stop_if_requested(step, epoch=epoch, batch=i + 1)   # SIGTERM/SIGINT -> save, Interrupted

All methods are called on every rank in the same order (some are collectives); only rank 0 writes.
With the `tensorboard` package installed, rank 0 also mirrors metrics (and `log_image` sample grids) into
TensorBoard event files in the run directory (stylekit/train/tensorboard.py).
docs/training.md has a complete example and the checkpoint format.
"""

from __future__ import annotations

import json
import math
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylekit.errors import BadInput, Interrupted, StylekitError
from stylekit.io.checkpoint import CheckpointManager, LoadedCheckpoint, checkpoint_name, read_checkpoint
from stylekit.io.console import ProgressTask, _json_default, get_console
from stylekit.io.rundir import RunDir
from stylekit.train.distributed import (
    DistInfo,
    all_gather_object,
    any_rank,
    broadcast_module,
    broadcast_object,
    unwrap,
)
from stylekit.train.stats import RunningMeans
from stylekit.train.tensorboard import TensorBoardLog

RNG_KEY = "rng"


class NonFiniteLoss(StylekitError):
    """A loss became nan/inf; the last checkpoint (written before it) is intact. Exit 1."""


class ScalerState:
    """A GradScaler as a checkpoint entry that resumes across --amp on/off and across hardware.

    A scaler is enabled only for fp16 autocast (`stylekit.device.needs_grad_scaler`); a disabled one
    saves {}. Resuming an enabled scaler from {} (or from a checkpoint without one) keeps its initial
    scale: it recalibrates within a few steps, skipping the updates of steps that overflow, exactly as
    a new fp16 run does. A disabled scaler has nothing to restore and ignores a saved state.
    """

    def __init__(self, scaler: torch.amp.GradScaler) -> None:
        self.scaler = scaler

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state and self.scaler.is_enabled():
            self.scaler.load_state_dict(dict(state))


def reapply_schedule(*schedulers: torch.optim.lr_scheduler.LambdaLR) -> None:
    """After resume, set each group's lr from the (possibly new) schedule at the saved position.

    A resumed optimizer keeps the lr it had when saved; when a rerun extends the run (--epochs raised),
    the new LambdaLR would otherwise only take effect at its next step, and a finished run's final lr
    of 0 would be used for the first new step."""
    for sched in schedulers:
        for group, base_lr, factor in zip(sched.optimizer.param_groups, sched.base_lrs, sched.lr_lambdas, strict=True):
            group["lr"] = base_lr * factor(sched.last_epoch)


def seed_everything(seed: int, rank: int = 0, deterministic: bool = False) -> int:
    """Seed python, numpy and torch (all devices) with seed + rank; returns that seed.

    Ranks get different streams (noise, augmentation); models still start equal because the runner
    broadcasts rank 0's modules on a new run. `deterministic` also asks torch for deterministic
    kernels (slower on CUDA; CPU runs of the same configuration are reproducible without it).
    """
    value = int(seed) + int(rank)
    random.seed(value)
    np.random.seed(value % 2**32)
    torch.manual_seed(value)
    if deterministic:
        import os

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return value


def capture_rng(device: torch.device | None = None) -> dict[str, Any]:
    """Python, numpy, torch CPU (and this rank's CUDA) generator states, in weights_only-loadable types."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: Mapping[str, Any], device: torch.device | None = None) -> None:
    """Inverse of `capture_rng`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if device is not None and device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _jsonable(document: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(document), default=_json_default))


def _to_float(value: Any) -> float:
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().mean().item())
    return float(value)


def _fmt_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class TrainRunner:
    """Checkpoint/resume/signal/metrics services for one training run in one run directory.

    `total` is the length of the run in the unit of `step` (optimizer steps, or images for kimg
    loops); it feeds the ETA and the progress bar. `config` is stored in config.json and in every
    checkpoint (a resume with changed options is allowed and warned about).
    """

    def __init__(
        self,
        run_dir: RunDir,
        dist: DistInfo | None = None,
        *,
        config: Mapping[str, Any] | None = None,
        keep: int = 3,
        total: int | None = None,
        handle_signals: bool = True,
    ) -> None:
        self.run_dir = run_dir
        self.dist = dist or DistInfo()
        self.config = _jsonable(config or {})
        self.total = total
        self.checkpoints = CheckpointManager(run_dir.checkpoints, keep=keep)
        self.start_step = 0
        self.last_checkpoint: Path | None = None
        self._objects: dict[str, Any] = {}
        self._signal: str | None = None
        self._announced = False
        self._old_handlers: dict[int, Any] = {}
        self._t_start = time.monotonic()
        self.tensorboard = TensorBoardLog(run_dir.path, self.dist.is_main)
        if config is not None:
            run_dir.write_config(self.config)
        if handle_signals:
            self._install_signals()

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> TrainRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Give the signal handlers back (the runner only owns them while training)."""
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        self._old_handlers.clear()
        self.tensorboard.close()

    # -- what a checkpoint holds -------------------------------------------------------------------
    def register(self, name: str, obj: Any) -> Any:
        """Add `obj` to every checkpoint under `name`; returns `obj`.

        nn.Modules (DDP/compile wrappers are unwrapped) go to NAME.safetensors; anything else with
        state_dict()/load_state_dict() — optimizers, LR schedulers, GradScaler, an augment pipe's
        state — goes to state.pt. Register everything before `resume()`.
        """
        if name in self._objects or name == RNG_KEY:
            raise ValueError(f"'{name}' is already registered (or reserved)")
        if isinstance(obj, torch.nn.Module):
            obj = unwrap(obj)
        elif isinstance(obj, torch.amp.GradScaler):
            self._objects[name] = ScalerState(obj)
            return obj
        elif not (hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")):
            raise TypeError(f"cannot checkpoint '{name}': {type(obj).__name__} has no state_dict()/load_state_dict()")
        self._objects[name] = obj
        return obj

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {n: o for n, o in self._objects.items() if isinstance(o, torch.nn.Module)}

    def _states(self) -> dict[str, Any]:
        return {n: o for n, o in self._objects.items() if not isinstance(o, torch.nn.Module)}

    # -- resume ----------------------------------------------------------------------------------
    def resume(self) -> dict[str, Any]:
        """Restore every registered object and the RNG from the latest checkpoint of the run dir.

        Returns its counters (always with "step"), or {} for a new run (then rank 0's modules are
        broadcast so all ranks start equal). metrics.jsonl records after the checkpoint are dropped.
        """
        console = get_console()
        name = None
        if self.dist.is_main:
            info = self.checkpoints.latest()
            name = info.name if info is not None else None
        name = broadcast_object(name, self.dist)
        if name is None:
            for module in self._modules().values():
                broadcast_module(module, self.dist)
            self.start_step = 0
            self._t_start = time.monotonic()
            self.tensorboard.open()
            console.log(f"new run in {self.run_dir.path}")
            return {}
        folder = self.run_dir.checkpoints / name
        if not folder.exists():
            raise BadInput(
                f"rank {self.dist.rank} cannot see checkpoint {folder}",
                hint="under multi-node torchrun, --out must be on a filesystem shared by all nodes",
            )
        loaded = read_checkpoint(folder)
        self._warn_changed_config(loaded.info.config)
        self._apply(loaded)
        step = loaded.info.step
        self.start_step = step
        self.last_checkpoint = folder
        self.run_dir.rewind_metrics("step", step)
        self.tensorboard.open(resume_step=step)
        where = f" of {self.total}" if self.total else ""
        console.log(f"resuming from {folder} (step {step}{where})")
        self._t_start = time.monotonic()
        return {**loaded.info.counters, "step": step}

    def _apply(self, loaded: LoadedCheckpoint) -> None:
        path = loaded.info.path
        fix = "resume with the options this run was started with, or start over with --fresh"
        for name, module in self._modules().items():
            if name not in loaded.tensors:
                raise BadInput(f"checkpoint {path} has no module '{name}'", hint=fix)
            try:
                module.load_state_dict(loaded.tensors[name], strict=True)
            except RuntimeError as exc:
                first = str(exc).strip().splitlines()
                detail = " ".join(line.strip() for line in first[:3])
                raise BadInput(f"checkpoint {path} does not fit module '{name}': {detail}", hint=fix) from None
        for name, obj in self._states().items():
            if name not in loaded.states and isinstance(obj, ScalerState):
                obj.load_state_dict({})  # a checkpoint of a run without a scaler
                continue
            if name not in loaded.states:
                raise BadInput(f"checkpoint {path} has no state '{name}'", hint=fix)
            try:
                obj.load_state_dict(loaded.states[name])
            except (RuntimeError, ValueError, KeyError) as exc:
                raise BadInput(f"checkpoint {path} does not fit '{name}': {exc}", hint=fix) from None
        extra = sorted((set(loaded.tensors) | set(loaded.states)) - {RNG_KEY} - set(self._objects))
        if extra:
            get_console().warn(f"checkpoint {path.name} also holds {', '.join(extra)}, not used by this run")
        rng = loaded.states.get(RNG_KEY)
        if isinstance(rng, list) and len(rng) == self.dist.world_size:
            restore_rng(rng[self.dist.rank], self.dist.device)
        else:
            saved = len(rng) if isinstance(rng, list) else 0
            get_console().warn(
                f"random streams not restored ({saved} saved, {self.dist.world_size} processes now): "
                "the run continues but will not repeat an uninterrupted run exactly"
            )

    def _warn_changed_config(self, saved: Mapping[str, Any]) -> None:
        if not saved or not self.config:
            return
        changed = [k for k in sorted(set(saved) | set(self.config)) if saved.get(k) != self.config.get(k)]
        if changed:
            parts = ", ".join(f"{k}: {saved.get(k)!r} -> {self.config.get(k)!r}" for k in changed[:8])
            get_console().warn(f"resuming with changed options ({parts})")

    # -- save ------------------------------------------------------------------------------------
    def save(self, step: int, *, pin: bool = False, **counters: Any) -> Path:
        """Write checkpoint ckpt-<step> (rank 0; every rank must call). Returns its folder.

        `counters` are small JSON values the loop needs to continue (epoch, batch, ada_p, ...); they
        come back from `resume()`. `pin=True` keeps it past --keep pruning (final or snapshot ones).
        Module weights are checked first: a nan/inf model is never written over a good checkpoint.
        """
        self._check_modules_finite(step)
        try:
            counters = _jsonable(counters)
        except TypeError as exc:
            raise ValueError(f"checkpoint counters must be JSON values: {exc}") from None
        rngs = all_gather_object(capture_rng(self.dist.device), self.dist)
        path = self.run_dir.checkpoints / checkpoint_name(step)
        error = ""
        if self.dist.is_main:
            tensors = {n: m.state_dict() for n, m in self._modules().items()}
            states = {n: o.state_dict() for n, o in self._states().items()}
            states[RNG_KEY] = rngs
            meta = {
                "counters": counters,
                "config": self.config,
                "world_size": self.dist.world_size,
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "torch": torch.__version__,
            }
            try:
                self.checkpoints.save(step, tensors, states, meta, pinned=pin)
            except OSError as exc:
                error = f"cannot write checkpoint {path}: {exc.strerror or exc}"
        # Also a barrier: no rank moves on (or exits) before rank 0 has finished writing.
        if any_rank(bool(error), self.dist):
            raise StylekitError(error or "rank 0 could not write a checkpoint", hint="free disk space or choose another --out; the previous checkpoint is intact")
        self.last_checkpoint = path
        self.tensorboard.histogram_modules(step, self._modules())
        return path

    @torch.no_grad()
    def _check_modules_finite(self, step: int) -> None:
        bad: list[str] = []
        for name, module in self._modules().items():
            tensors = [t for t in list(module.parameters()) + list(module.buffers()) if t.is_floating_point()]
            if tensors and not bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()):
                bad.append(name)
        if any_rank(bool(bad), self.dist):
            what = ", ".join(bad) or "a module on another rank"
            raise NonFiniteLoss(f"weights of {what} are not finite at step {step}; no checkpoint written", hint=self._diverged_hint())

    # -- guards ----------------------------------------------------------------------------------
    def check_finite(self, step: int, **losses: Any) -> dict[str, float]:
        """Raise NonFiniteLoss naming the step and the loss part if any loss is nan/inf (on any rank).

        Returns the losses as floats (ready for log_metrics). Reading them synchronises with the
        device, so on GPU call it where the loop reads losses anyway.
        """
        values = {k: _to_float(v) for k, v in losses.items()}
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if any_rank(bool(bad), self.dist):
            if bad:
                parts = ", ".join(f"{k}={values[k]}" for k in bad)
                ok = ", ".join(f"{k}={values[k]:.4g}" for k in values if k not in bad)
                msg = f"training diverged at step {step}: {parts}" + (f" ({ok})" if ok else "")
            else:
                msg = f"training diverged at step {step} on another rank"
            raise NonFiniteLoss(msg, hint=self._diverged_hint())
        return values

    def _diverged_hint(self) -> str:
        if self.last_checkpoint is None:
            return "no checkpoint was written yet; lower the learning rate or turn off --amp and run again"
        return (
            f"the last good checkpoint {self.last_checkpoint.name} is intact; lower the learning rate or "
            "turn off --amp, then rerun the same command to resume from it"
        )

    # -- signals ---------------------------------------------------------------------------------
    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._old_handlers[signum] = signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        # Only set a flag here (no I/O: the main thread may be inside a write). A second Ctrl-C stops
        # at once; a SIGTERM after Ctrl-C (torchrun forwards one) does not.
        if self._signal == "SIGINT" and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self._signal is None:
            self._signal = signal.Signals(signum).name

    def request_stop(self, reason: str = "request") -> None:
        """Ask the loop to stop at the next boundary, as a signal would (tests, time budgets)."""
        self._signal = self._signal or reason

    def should_stop(self) -> bool:
        """True on every rank once any rank got SIGTERM/SIGINT. Call at step boundaries on all ranks."""
        stop = any_rank(self._signal is not None, self.dist)
        if stop and not self._announced:
            self._announced = True
            get_console().log(f"{self._signal or 'signal on another rank'}: saving a checkpoint, then stopping")
        return stop

    def stop_if_requested(self, step: int, **counters: Any) -> None:
        """At a step boundary: if a stop was requested, save checkpoint `step` and raise Interrupted (exit 130)."""
        if self.should_stop():
            path = self.run_dir.checkpoints / checkpoint_name(step)
            if self.last_checkpoint != path:  # not already saved at this very step
                path = self.save(step, **counters)
            raise Interrupted(
                f"stopped by {self._signal or 'a signal on another rank'} at step {step}; checkpoint saved in {path}",
                hint="run the same command again to resume",
            )

    def end_of_batch(self, step: int, epoch: int, batch: int, steps_per_epoch: int, parts: Mapping[str, Any],
                     stats: RunningMeans, task: ProgressTask, *, log_every: int, save_every: int,
                     show: Callable[[dict[str, float]], dict[str, float]]) -> None:
        """The bookkeeping of an epoch-based trainer after the step of batch `batch` (0-based) of `epoch`.

        Accumulates the loss parts (on the device); every `log_every` batches and at the epoch's end reads
        their means (one collective, one read), checks them and logs them, with `show(values)` next to the
        bar; saves a checkpoint every `save_every` steps inside the epoch (the epoch's end saves its own);
        stops (checkpoint, exit 130) if a signal arrived.
        """
        task.advance()
        for k, v in parts.items():
            stats.add(k, v)
        last = batch + 1 == steps_per_epoch
        if step % log_every == 0 or last:
            values = self.check_finite(step, **stats.means(self.dist))
            self.log_metrics(step, kind="train", epoch=epoch + (batch + 1) / steps_per_epoch, **values)
            task.update(**show(values))
        if save_every > 0 and step % save_every == 0 and not last:
            self.save(step, epoch=epoch, batch=batch + 1)
        self.stop_if_requested(step, epoch=epoch, batch=batch + 1)

    # -- reporting -------------------------------------------------------------------------------
    def log_metrics(self, step: int, **values: Any) -> dict[str, Any]:
        """Append {"step", **values, "time"} to metrics.jsonl and log one line with the ETA (rank 0 only).

        No collectives: reduce values over ranks first if you want global means (all_reduce_mean).
        """
        record: dict[str, Any] = {"step": int(step)}
        for key, value in values.items():
            record[key] = _to_float(value) if isinstance(value, torch.Tensor) else value
        record["time"] = round(time.time(), 3)
        if self.dist.is_main:
            self.run_dir.append_metrics(record)
            self.tensorboard.scalars(step, {k: record[k] for k in values}, walltime=record["time"])
            shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items() if k in values)
            head = f"step {step}/{self.total}" if self.total else f"step {step}"
            eta = self.eta(step)
            tail = f" | {_fmt_duration(self.elapsed)} elapsed" + (f", ETA {_fmt_duration(eta)}" if eta is not None else "")
            get_console().log(f"{head} {shown}{tail}")
        return record

    def log_image(self, step: int, tag: str, path: Path) -> None:
        """Mirror a sample grid the trainer wrote (PNG) into TensorBoard (rank 0; no-op elsewhere)."""
        if self.dist.is_main:
            self.tensorboard.image(step, tag, path)

    @property
    def elapsed(self) -> float:
        """Seconds since this process started (or resumed) training."""
        return time.monotonic() - self._t_start

    def eta(self, step: int) -> float | None:
        """Seconds left at the speed measured since this process started/resumed (None if unknown)."""
        done = step - self.start_step
        if not self.total or done <= 0:
            return None
        return (self.total - step) * self.elapsed / done

    @contextmanager
    def progress(self, description: str = "train") -> Iterator[ProgressTask]:
        """A progress bar over the steps still to run (so its ETA is right after a resume)."""
        remaining = max((self.total or 0) - self.start_step, 0) or None
        label = description if not self.start_step else f"{description} (from step {self.start_step})"
        with get_console().progress(remaining, label) as task:
            yield task
