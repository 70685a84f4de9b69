"""The one door for `torch.save` files (.pt/.pth/.bin): networks, VGG, Inception, RetinaFace, LPIPS,
CLIP, backbones and the optimizer state of resume checkpoints all come through here.

What reading such a file costs is bounded from its structure before torch allocates anything:

- a TorchScript archive is refused (loading one runs the code it carries);
- a zip archive's members are checked from its central directory (`zipfile.ZipFile.infolist`, which
  reads no member): each must lie inside the file, and a compressed member may not inflate more
  than ZIP_RATIO_MAX times above ZIP_RATIO_FLOOR (torch inflates a member at its declared size);
- a legacy (pre-zip) file's pickle is walked with stand-ins for every global, which build nothing,
  to add up the storage sizes it declares: torch allocates each storage at its declared size before
  reading the bytes, so the sum may not exceed the file's size;
- after `torch.load(weights_only=True)` the tensors are still views of the file's storages: their
  shapes and strides are checked against those storages (`limits.check_tensor_bytes`) before any
  copy or dtype conversion could multiply a zero-stride view.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from stylekit.errors import BadInput
from stylekit.io.limits import ZIP_RATIO_FLOOR, ZIP_RATIO_MAX, MiB, check_tensor_bytes
from stylekit.io.paths import not_regular_reason, require_regular_file
from stylekit.io.safe_pickle import _BoundedReader

_HINT = "the file is damaged or hostile (see docs/security.md); only load weights from sources you trust"


def is_torchscript_archive(path: str | Path) -> bool:
    """True for a TorchScript zip (code/ or constants.pkl inside); only the zip directory is read.

    False for anything that is not a regular file (never opened: a FIFO would block)."""
    if not_regular_reason(path) is not None:
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return any("/code/" in n or n.endswith("constants.pkl") for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def refuse_torchscript(path: str | Path, hint: str) -> None:
    """BadInput (exit 2) when `path` is a TorchScript archive."""
    if is_torchscript_archive(path):
        raise BadInput(f"{path} is a TorchScript archive; stylekit does not execute code from weights files", hint=hint)


def check_zip_members(path: str | Path, label: str | None = None) -> None:
    """BadInput naming the member when a zip archive declares more than its bytes can hold.

    Not a zip (a legacy torch.save file, safetensors): nothing to check here."""
    label = label or str(path)
    try:
        size = os.path.getsize(path)
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return
    for info in members:
        if info.header_offset + info.compress_size > size:
            raise BadInput(f"{label}: zip member {info.filename} declares {info.compress_size} stored bytes beyond the "
                           f"end of the {size}-byte file", hint=_HINT)
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise BadInput(f"{label}: zip member {info.filename} is stored uncompressed but declares {info.file_size} "
                           f"bytes for {info.compress_size}", hint=_HINT)
        if info.file_size > ZIP_RATIO_FLOOR and info.file_size > ZIP_RATIO_MAX * max(info.compress_size, 1):
            raise BadInput(f"{label}: zip member {info.filename} inflates {info.compress_size} bytes to {info.file_size} "
                           f"(more than {ZIP_RATIO_MAX}x above {ZIP_RATIO_FLOOR // MiB} MiB: a zip bomb)", hint=_HINT)


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # the first pickle of a legacy torch.save file


class _Stand:
    """What every global of a legacy torch file's pickle resolves to while its storages are counted:
    calling, building or filling one only makes another stand-in."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Stand:
        return _Stand()

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _StorageCounter(pickle.Unpickler):
    def __init__(self, fh: Any) -> None:
        super().__init__(fh)
        self.declared: dict[Any, int] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name.endswith("Storage"):
            cls = getattr(torch, name, None)
            return ("storage", 1 if cls is torch.UntypedStorage else getattr(getattr(cls, "_dtype", None), "itemsize", 1))
        return _Stand

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[4], int):
            kind = pid[1]
            itemsize = kind[1] if isinstance(kind, tuple) and len(kind) == 2 and kind[0] == "storage" else 1
            self.declared[str(pid[2])] = max(pid[4], 0) * itemsize
        return _Stand()


def check_legacy_storages(path: str | Path, label: str | None = None) -> None:
    """BadInput when a legacy torch.save file declares more storage bytes than it holds. Anything
    that is not such a file (zip, safetensors, garbage) is left to its reader."""

    label = label or str(path)
    size = os.path.getsize(path)
    with open(path, "rb") as raw:
        fh = _BoundedReader(raw, size)
        try:
            if pickle.Unpickler(fh).load() != _LEGACY_MAGIC:  # an int: nothing to build
                return
            counter = _StorageCounter(fh)
            for _ in range(3):  # protocol version, system info, then the object with its storages
                counter.load()
        except Exception:  # noqa: BLE001 - not a legacy torch file: torch.load will say what it is
            return
    declared = sum(counter.declared.values())
    if declared > size:
        raise BadInput(f"{label}: its storages declare {declared} bytes but the file holds {size}", hint=_HINT)


def tensors_in(obj: Any, depth: int = 0) -> Iterator[torch.Tensor]:
    """Every tensor in a loaded torch file (dicts, lists, tuples; torch's weights-only unpickler
    builds nothing else deeper than its own bounds)."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif depth < 64 and isinstance(obj, dict):
        for value in obj.values():
            yield from tensors_in(value, depth + 1)
    elif depth < 64 and isinstance(obj, (list, tuple)):
        for value in obj:
            yield from tensors_in(value, depth + 1)


def load_torch(path: str | Path, what: str, hint: str, safe_globals: Iterable[Any] = (),
               map_location: str | torch.device = "cpu", mmap: bool = False) -> Any:
    """`torch.load(path, weights_only=True)` with the file's cost bounded first (module docstring).

    BadInput (exit 2) naming the file on anything unreadable or refused."""
    path = Path(path)
    require_regular_file(path, what)  # before any open(): a FIFO would block it forever
    refuse_torchscript(path, hint)
    check_zip_members(path)
    check_legacy_storages(path)
    try:
        with torch.serialization.safe_globals(list(safe_globals)):
            data = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except Exception as exc:  # noqa: BLE001 - any refusal/corruption becomes one clear message
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BadInput(f"{path} is not a readable {what}: cannot read this torch file safely ({type(exc).__name__}: {reason})",
                       hint=hint) from None
    check_tensor_bytes(list(tensors_in(data)), str(path))
    return data


def check_torch_file(path: str | Path, what: str, hint: str) -> None:
    """For a file a library loads itself (open_clip): the same checks as `load_torch`, reading the
    storages memory-mapped, so checking costs no copy of the weights. Safetensors files pass through
    (their reader checks offsets and lengths against the file)."""
    path = Path(path)
    refuse_torchscript(path, hint)
    with open(require_regular_file(path, what), "rb") as fh:
        head = fh.read(9)
    if len(head) == 9 and head[8:9] == b"{" and not head.startswith(b"PK"):
        return
    load_torch(path, what, hint, mmap=True)
