"""Checkpoints: one folder per save under OUT/checkpoints/, written atomically, plus a `latest` pointer.

    checkpoints/
      latest                    "ckpt-000001200\\n": the newest complete checkpoint (written last)
      ckpt-000001200/
        meta.json               format, version, step, counters, config, what the folder holds
        G.safetensors           tensors of each registered nn.Module, one file per module
        D.safetensors           (other tools can read G_ema.safetensors without stylekit)
        state.pt                optimizer / scheduler / scaler / RNG states: torch.save, read back
                                with torch.load(weights_only=True) — never plain unpickling

Write order: everything goes into checkpoints/.tmp-ckpt-<step>-<pid>/, each file is fsynced, the
folder is renamed into place and checkpoints/ fsynced, then `latest` is replaced atomically, then old
checkpoints are pruned. A kill at any moment therefore leaves `latest` naming a complete folder; the
one window where it may not (replacing a checkpoint of the same step) is covered by `latest()`
falling back to the newest complete folder. Half-written `.tmp-*` folders are removed by the next save.
"""

from __future__ import annotations

import json
import os
import pickle  # only for its exception type: files are read with weights_only=True
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from stylekit.errors import BadInput
from stylekit.io.atomic import _fsync_dir, write_text_atomic
from stylekit.io.console import _json_default, get_console
from stylekit.io.limits import parse_json
from stylekit.io.paths import read_regular_text, require_regular_file
from stylekit.io.torch_file import load_torch

FORMAT = "stylekit-checkpoint"
VERSION = 1
LATEST = "latest"
META = "meta.json"
STATE = "state.pt"
_CKPT_RE = re.compile(r"^ckpt-(\d+)$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def checkpoint_name(step: int) -> str:
    """Folder name of the checkpoint taken at `step` (zero-padded so names sort by step)."""
    return f"ckpt-{int(step):09d}"


@dataclass(frozen=True)
class CheckpointInfo:
    """A complete checkpoint folder and its meta.json."""

    path: Path
    meta: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    @property
    def counters(self) -> dict[str, Any]:
        return dict(self.meta.get("counters", {}))

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.meta.get("config", {}))

    @property
    def pinned(self) -> bool:
        return bool(self.meta.get("pinned", False))

    @property
    def modules(self) -> list[str]:
        return list(self.meta.get("modules", []))


@dataclass
class LoadedCheckpoint:
    """What `read_checkpoint` returns: module tensors by module name, other states by name."""

    info: CheckpointInfo
    tensors: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    states: dict[str, Any] = field(default_factory=dict)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _cpu_tensors(tensors: Mapping[str, torch.Tensor], module: str) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU copies (copies also untie shared storage, which safetensors refuses)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"module '{module}': state entry '{key}' is a {type(value).__name__}, not a tensor")
        t = value.detach()
        t = t.cpu() if t.device.type != "cpu" else t.clone()
        out[key] = t.contiguous()
    return out


def _read_meta(folder: Path) -> dict[str, Any] | None:

    try:
        meta = parse_json(read_regular_text(folder / META, "checkpoint metadata"), str(folder / META))
    except (OSError, BadInput, UnicodeDecodeError):  # damaged, hostile, unreadable or a FIFO: not a usable checkpoint
        return None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "step" not in meta:
        return None
    return meta


def write_checkpoint(
    folder: Path,
    tensors: Mapping[str, Mapping[str, torch.Tensor]],
    states: Mapping[str, Any],
    meta: Mapping[str, Any],
) -> Path:
    """Write one checkpoint folder atomically: a temp sibling folder, fsynced, then renamed to `folder`.

    An existing `folder` is replaced (old one moved aside first, removed after). On any exception the
    temp folder is removed and `folder` is as before.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    parent = folder.parent
    parent.mkdir(parents=True, exist_ok=True)
    for name in list(tensors) + list(states):
        if not _NAME_RE.match(name) or name in ("meta", "state", LATEST):
            raise ValueError(f"bad checkpoint entry name '{name}' (letters, digits, _ . - ; not meta/state/latest)")
    tmp = parent / f".tmp-{folder.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        for name, module_tensors in tensors.items():
            path = tmp / f"{name}.safetensors"
            save_file(_cpu_tensors(module_tensors, name), str(path), metadata={"format": FORMAT, "module": name})
            _fsync_file(path)
        torch.save(dict(states), tmp / STATE)
        _fsync_file(tmp / STATE)
        full_meta = {
            "format": FORMAT,
            "version": VERSION,
            **dict(meta),
            "modules": sorted(tensors),
            "states": sorted(states),
        }
        (tmp / META).write_text(json.dumps(full_meta, indent=2, default=_json_default) + "\n", encoding="utf-8")
        _fsync_file(tmp / META)
        _fsync_dir(tmp)
        old = None
        if folder.exists():
            old = parent / f".old-{folder.name}-{os.getpid()}"
            if old.exists():
                shutil.rmtree(old)
            os.replace(folder, old)
        os.replace(tmp, folder)
        _fsync_dir(parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def read_checkpoint(folder: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Load every file of one checkpoint folder (tensors via safetensors, states with weights_only=True)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    meta = _read_meta(folder)
    if meta is None:
        raise BadInput(f"{folder} is not a stylekit checkpoint (no valid {META})", hint="point to a run directory or a ckpt-* folder")
    info = CheckpointInfo(folder, meta)
    loaded = LoadedCheckpoint(info)
    try:
        for name in info.modules:
            file = require_regular_file(folder / f"{name}.safetensors", "checkpoint file")  # never open a FIFO
            loaded.tensors[name] = load_file(str(file), device=str(map_location))
        if (folder / STATE).exists() or meta.get("states"):
            loaded.states = load_torch(folder / STATE, "checkpoint file", map_location=map_location,
                                       hint=f"delete {folder} to resume from the one before it, or rerun with --fresh")
    except (OSError, SafetensorError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError, BadInput) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BadInput(
            f"checkpoint {folder} is damaged or unsafe to load: {reason}",
            hint=f"delete {folder} to resume from the one before it, or rerun with --fresh",
        ) from None
    return loaded


def find_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A run directory, its checkpoints/ folder or one ckpt-* folder -> the checkpoint folder to read."""
    path = Path(path)
    if (path / META).exists():
        return path
    for folder in (path / "checkpoints", path):
        if folder.is_dir():
            info = CheckpointManager(folder).latest()
            if info is not None:
                return info.path
    raise BadInput(f"no checkpoint found in {path}", hint="give a run directory (--out of a training run) or a ckpt-* folder")


def load_module_tensors(path: str | os.PathLike[str], module: str) -> dict[str, torch.Tensor]:
    """The tensors of one module (e.g. 'G_ema') from a run directory or checkpoint folder."""
    from safetensors.torch import load_file

    folder = find_checkpoint(path)
    file = folder / f"{module}.safetensors"
    if not file.exists():
        have = ", ".join(CheckpointInfo(folder, _read_meta(folder) or {}).modules) or "none"
        raise BadInput(f"checkpoint {folder} has no module '{module}' (it has: {have})")
    return load_file(str(require_regular_file(file, "checkpoint file")))


class CheckpointManager:
    """The checkpoints/ folder of one run: save (atomic), list, latest, prune to the newest `keep`.

    Only one process writes (rank 0, holding the run-directory lock); any process may read.
    """

    def __init__(self, folder: str | os.PathLike[str], keep: int = 3) -> None:
        if keep < 1:
            raise BadInput(f"--keep {keep}: must keep at least 1 checkpoint")
        self.folder = Path(folder)
        self.keep = keep

    def save(
        self,
        step: int,
        tensors: Mapping[str, Mapping[str, torch.Tensor]],
        states: Mapping[str, Any],
        meta: Mapping[str, Any] | None = None,
        pinned: bool = False,
    ) -> CheckpointInfo:
        """Write checkpoint `step`, then point `latest` at it, then prune. Returns the new checkpoint."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._remove_stale()
        full_meta = {**dict(meta or {}), "step": int(step), "pinned": bool(pinned)}
        path = write_checkpoint(self.folder / checkpoint_name(step), tensors, states, full_meta)
        write_text_atomic(self.folder / LATEST, path.name + "\n")
        self.prune()
        info = CheckpointInfo(path, _read_meta(path) or {})
        return info

    def list(self) -> list[CheckpointInfo]:
        """Complete checkpoints, oldest first."""
        if not self.folder.is_dir():
            return []
        found = []
        for child in self.folder.iterdir():
            if _CKPT_RE.match(child.name) and child.is_dir():
                meta = _read_meta(child)
                if meta is not None:
                    found.append(CheckpointInfo(child, meta))
        return sorted(found, key=lambda c: (c.step, c.name))

    def latest(self) -> CheckpointInfo | None:
        """The checkpoint `latest` names; if that is missing or incomplete, the newest complete one."""
        pointer = self.folder / LATEST
        if pointer.is_file():
            name = pointer.read_text(encoding="utf-8").strip()
            meta = _read_meta(self.folder / name) if _CKPT_RE.match(name) else None
            if meta is not None:
                return CheckpointInfo(self.folder / name, meta)
        found = self.list()
        if found and pointer.exists():
            get_console().warn(f"{pointer} names no complete checkpoint; using {found[-1].name}")
        return found[-1] if found else None

    def prune(self) -> None:
        """Remove the oldest unpinned checkpoints beyond `keep` (the one `latest` names is always kept)."""
        latest = self.latest()
        unpinned = [c for c in self.list() if not c.pinned and (latest is None or c.path != latest.path)]
        excess = len(unpinned) - (self.keep - (0 if latest is None or latest.pinned else 1))
        for info in unpinned[: max(excess, 0)]:
            shutil.rmtree(info.path, ignore_errors=True)

    def _remove_stale(self) -> None:
        """Folders left by a save that was killed half-way (.tmp-*) or mid-replace (.old-*), and the temp
        file of a `latest` pointer whose atomic replace was killed (.latest.<random>.tmp)."""
        for child in self.folder.iterdir():
            if child.is_dir() and (child.name.startswith(".tmp-ckpt-") or child.name.startswith(".old-ckpt-")):
                shutil.rmtree(child, ignore_errors=True)
            elif child.is_file() and child.name.startswith(f".{LATEST}.") and child.name.endswith(".tmp"):
                child.unlink(missing_ok=True)
