"""Read third-party network pickles (NVlabs StyleGAN snapshots) without executing anything from them.

A normal `pickle.load` of an NVlabs snapshot imports `torch_utils.persistence`, which `exec()`s the
Python source embedded in the file, and any pickle can call any importable function through
`__reduce__`. This unpickler resolves only a short allow-list of globals, all of which rebuild
plain data (dicts, tensors, numpy scalars):

- `torch_utils.persistence._reconstruct_persistent_obj` -> `PersistentObject`: the class name and
  the saved `__dict__` (parameters, buffers, sub-modules, `_init_kwargs`); the embedded source
  code is dropped, never run;
- `dnnlib.util.EasyDict` -> a plain dict; `collections.OrderedDict`, `builtins.set/frozenset`;
- `torch._utils._rebuild_tensor_v2` / `_rebuild_parameter` (data only), and
  `torch.storage._load_from_bytes`, replaced by a loader that uses `torch.load(weights_only=True)`;
- numpy dtypes, scalars and arrays.

Anything else (os.system, builtins.eval, subprocess, ...) makes the load fail with BadInput before
the object is built. Persistent ids (used by `torch.save` archives) are refused too.
"""

from __future__ import annotations

import collections
import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch

from stylekit.errors import BadInput
from stylekit.io.paths import open_regular


class EasyDict(dict):
    """Stand-in for dnnlib.util.EasyDict: a plain dict (attribute access is not needed)."""


@dataclass
class PersistentObject:
    """What an NVlabs persistent module becomes: its class name and saved state, no code."""

    class_name: str
    state: dict[str, Any] = field(default_factory=dict)
    version: int | None = None

    @property
    def modules(self) -> dict[str, Any]:
        return dict(self.state.get("_modules") or {})

    @property
    def init_kwargs(self) -> dict[str, Any]:
        return plain(self.state.get("_init_kwargs") or {})

    @property
    def init_args(self) -> tuple[Any, ...]:
        return tuple(self.state.get("_init_args") or ())


def plain(value: Any) -> Any:
    """EasyDict/OrderedDict/tuple trees -> plain dicts and lists (JSON-friendly where possible)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


class TensorFlowPickle(Exception):
    """Raised inside the unpickler when the file is an original TensorFlow StyleGAN pickle."""


def _reconstruct_persistent_obj(meta: dict[str, Any]) -> PersistentObject:
    # Never exec meta['module_src']: keep only the name and the state.
    if not isinstance(meta, dict):
        raise pickle.UnpicklingError("persistent object metadata is not a dict")
    state = meta.get("state")
    return PersistentObject(
        class_name=str(meta.get("class_name", "")),
        state=dict(state) if isinstance(state, dict) else {},
        version=meta.get("version"),
    )


def _load_storage_from_bytes(data: bytes) -> Any:
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("storage payload is not bytes")
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


def _numpy_global(module: str, name: str) -> Any:
    import numpy as np

    if name == "dtype":
        return np.dtype
    if name == "ndarray":
        return np.ndarray
    try:
        core = np._core.multiarray  # numpy >= 2
    except AttributeError:  # pragma: no cover - numpy 1.x
        core = np.core.multiarray
    return getattr(core, name)


_NUMPY = {
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
}

_TORCH_DTYPES = {
    "float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "bool",
    "half", "float", "double", "long", "int",
}


class RestrictedUnpickler(pickle.Unpickler):
    """pickle.Unpickler that resolves only the allow-listed, data-only globals."""

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key == ("torch_utils.persistence", "_reconstruct_persistent_obj"):
            return _reconstruct_persistent_obj
        if key in {("dnnlib.util", "EasyDict"), ("dnnlib", "EasyDict")}:
            return EasyDict
        if key == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if key in {("builtins", "set"), ("builtins", "frozenset")}:
            return set if name == "set" else frozenset
        if module == "torch._utils" and name in {
            "_rebuild_tensor_v2", "_rebuild_tensor", "_rebuild_parameter", "_rebuild_parameter_with_state",
        }:
            import torch._utils as tu

            return getattr(tu, name)
        if key == ("torch.storage", "_load_from_bytes"):
            return _load_storage_from_bytes
        if module == "torch" and (name in _TORCH_DTYPES or name in {"device", "Size"}):
            return getattr(torch, name)
        if key in _NUMPY:
            return _numpy_global(module, name)
        if module.startswith("dnnlib.tflib"):
            raise TensorFlowPickle(f"{module}.{name}")
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed in a network pickle")


def safe_load(source: str | Path | IO[bytes], what: str | None = None) -> Any:
    """Unpickle `source` with the restricted unpickler; BadInput (exit 2) on anything refused."""
    label = what or (str(source) if isinstance(source, (str, Path)) else "pickle")
    try:
        if isinstance(source, (str, Path)):
            with open_regular(source, label) as fh:  # never blocks on a FIFO
                return RestrictedUnpickler(fh).load()
        return RestrictedUnpickler(source).load()
    except TensorFlowPickle:
        raise BadInput(
            f"{label} is an original TensorFlow StyleGAN pickle, which stylekit does not read",
            hint="convert it once with NVlabs stylegan2-ada-pytorch 'legacy.py --source IN --dest OUT' "
            "in an environment you trust, or use the PyTorch release of the same network",
        ) from None
    except pickle.UnpicklingError as exc:
        raise BadInput(
            f"{label}: refused to unpickle ({exc}); a network snapshot needs only tensors and dicts, "
            "so this file may try to run code",
            hint="only load network files from sources you trust; stylekit reads NVlabs snapshots, "
            "rosinality .pt and stylekit .safetensors",
        ) from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, RuntimeError, MemoryError) as exc:
        raise BadInput(f"{label}: not a readable network pickle ({type(exc).__name__}: {exc})", hint="is the file complete?") from None
