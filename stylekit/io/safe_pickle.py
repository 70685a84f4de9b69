"""Read third-party network pickles (NVlabs StyleGAN snapshots) without executing anything from them.

A normal `pickle.load` of an NVlabs snapshot imports `torch_utils.persistence`, which `exec()`s the
Python source embedded in the file, and any pickle can call any importable function through
`__reduce__`. This unpickler resolves only a short allow-list of globals, all of which rebuild
plain data (dicts, tensors, numpy scalars):

- `torch_utils.persistence._reconstruct_persistent_obj` -> `PersistentObject`: the class name and
  the saved `__dict__` (parameters, buffers, sub-modules, `_init_kwargs`); the embedded source
  code is dropped, never run;
- `dnnlib.util.EasyDict` -> a plain dict; `collections.OrderedDict`, `builtins.set/frozenset`;
- `torch._utils._rebuild_tensor_v2` / `_rebuild_parameter` (data only, views checked against their
  storage), and `torch.storage._load_from_bytes`, replaced by a loader that checks the declared
  storage size against the payload, then uses `torch.load(weights_only=True)`;
- numpy dtypes (always fresh copies), scalars and arrays.

Anything else (os.system, builtins.eval, subprocess, ...) makes the load fail with BadInput before
the object is built. Persistent ids (used by `torch.save` archives) are refused too. A file may only
BUILD / SETITEM / APPEND into objects it created, never into an allow-listed global; its reads,
opcode count and nesting depth are bounded (stylekit/io/limits.py, docs/security.md).
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import pickletools
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch

from stylekit.errors import BadInput
from stylekit.io.limits import NUMPY_ITEMSIZE_MAX, PICKLE_OPS_MAX, check_nesting
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


class _StorageType:
    """What a storage class name resolves to while scanning: its element size, nothing callable."""

    def __init__(self, itemsize: int) -> None:
        self.itemsize = itemsize


_STORAGE_HEADER_OPS = 1000  # the four header pickles of a storage payload hold ~50 opcodes


def _declared_storage_bytes(data: bytes) -> int:
    """Bytes the storages in a legacy `torch.save` payload declare, read without allocating them.

    torch allocates each storage at the size the payload declares before reading its bytes, so a
    100-byte payload could ask for 64 GiB; stylekit compares the declaration with the bytes present.
    The header pickles are walked opcode by opcode first (pickletools builds nothing), so only a
    short header is ever unpickled, and storage classes resolve to their element size only.
    """
    declared: list[int] = []

    class Scan(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            cls = getattr(torch, name, None) if module == "torch" and name.endswith("Storage") else None
            if cls is torch.UntypedStorage:
                return _StorageType(1)
            if cls is None or not hasattr(cls, "_dtype"):
                raise pickle.UnpicklingError(f"storage payload names '{module}.{name}'")
            return _StorageType(cls._dtype.itemsize)

        def persistent_load(self, pid: Any) -> Any:
            if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage" and isinstance(pid[1], _StorageType)
                    and isinstance(pid[4], int)):
                raise pickle.UnpicklingError("storage payload holds an unexpected persistent id")
            declared.append(pid[4] * pid[1].itemsize)
            return None

    fh = io.BytesIO(data)
    for _ in range(4):  # magic number, protocol version, system info, then the object itself
        start = fh.tell()
        for count, _op in enumerate(pickletools.genops(fh)):
            if count > _STORAGE_HEADER_OPS:
                raise pickle.UnpicklingError("storage payload header is not a torch.save header")
        fh.seek(start)
        Scan(fh).load()
    return sum(declared)


def _load_storage_from_bytes(data: bytes) -> Any:
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("storage payload is not bytes")
    declared = _declared_storage_bytes(bytes(data))
    if declared > len(data):
        raise pickle.UnpicklingError(f"a tensor storage declares {declared} bytes but its payload holds {len(data)}")
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_ignored: Any) -> torch.Tensor:
    """torch._utils._rebuild_tensor_v2 after checking the view stays inside its storage.

    A zero or overlapping stride lets a tensor declare far more elements than its storage holds, and
    the first copy of it (dtype conversion, load_state_dict) would allocate them all. Hooks and extra
    metadata from the file are dropped: a network weight needs neither.
    """
    from torch._utils import _rebuild_tensor_v2

    if not isinstance(storage, torch.storage.TypedStorage):
        raise pickle.UnpicklingError("tensor data is not a storage")
    ints = [offset, *size, *stride]
    if len(size) != len(stride) or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in ints):
        raise pickle.UnpicklingError("tensor shape, stride or offset is not a list of non-negative integers")
    numel = math.prod(size)
    held = storage._size()
    if numel and (numel > held or offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) >= held):
        raise pickle.UnpicklingError(
            f"a tensor of shape {list(size)} (stride {list(stride)}) declares {numel} elements but its storage holds {held}"
        )
    return _rebuild_tensor_v2(storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())


def _rebuild_parameter(data: Any, requires_grad: Any = False, *_ignored: Any) -> torch.nn.Parameter:
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError("parameter data is not a tensor")
    return torch.nn.Parameter(data, requires_grad=bool(requires_grad))


class _NumpyArrayType:
    """What 'numpy.ndarray' resolves to: only `_reconstruct` accepts it, so a file cannot call
    ndarray(shape) or ndarray.__new__ to allocate an array of any size it likes."""


def _checked_dtype(dtype: Any) -> Any:
    """A numpy dtype whose elements are at most NUMPY_ITEMSIZE_MAX bytes: `dtype('V400000000')` costs
    nothing to build, but every scalar or array element of it would (numpy zero-fills them)."""
    import numpy as np

    if not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError("a numpy value with something other than a dtype")
    if dtype.itemsize > NUMPY_ITEMSIZE_MAX:
        raise pickle.UnpicklingError(f"a numpy dtype of {dtype.itemsize} bytes per element (at most {NUMPY_ITEMSIZE_MAX})")
    return dtype


def _numpy_reconstruct(subtype: Any, shape: Any, dtype: Any) -> Any:
    # numpy pickles an array as an empty (0,) array plus a BUILD (vetted by _vet_numpy_array_state).
    import numpy as np

    if subtype is not _NumpyArrayType or tuple(shape) != (0,):
        raise pickle.UnpicklingError("numpy array reconstruction with an unexpected type or shape")
    return np.ndarray.__new__(np.ndarray, (0,), dtype)  # numpy passes b'b'; the real dtype comes with BUILD


def _numpy_dtype(obj: Any, align: bool = False, copy: bool = True) -> Any:
    # Always a fresh copy: np.dtype(..., copy=False) returns numpy's shared instance, whose state a
    # following BUILD could otherwise change for the whole process.
    import numpy as np

    if not isinstance(obj, str) or len(obj) > 16:
        raise pickle.UnpicklingError("a numpy dtype named by something other than a short type string")
    try:
        return _checked_dtype(np.dtype(obj, bool(align), True))
    except TypeError as exc:
        raise pickle.UnpicklingError(f"numpy dtype {obj!r}: {exc}") from None


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    """numpy's scalar(dtype, data): the bytes must be the file's own, exactly one element of them."""
    import numpy as np

    try:
        core = np._core.multiarray  # numpy >= 2
    except AttributeError:  # pragma: no cover - numpy 1.x
        core = np.core.multiarray
    dtype = _checked_dtype(dtype)
    if dtype.hasobject:
        raise pickle.UnpicklingError("a numpy object scalar")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise pickle.UnpicklingError(f"a numpy scalar of {dtype.itemsize} bytes whose data is not {dtype.itemsize} bytes")
    return core.scalar(dtype, data)


def _vet_build(target: Any, state: Any) -> None:
    """BUILD sets an object's state: never a tensor's (Tensor.__setstate__ would take any view,
    unchecked), and a numpy dtype's or array's only with sizes the file's bytes back."""
    import numpy as np

    if isinstance(target, torch.Tensor):
        raise pickle.UnpicklingError("the file sets the state of a tensor directly (BUILD); tensors are rebuilt only from a storage")
    if isinstance(target, np.dtype):
        elsize = state[5] if isinstance(state, tuple) and len(state) > 5 else None
        if not isinstance(elsize, int) or isinstance(elsize, bool) or not -1 <= elsize <= NUMPY_ITEMSIZE_MAX:  # -1: keep
            raise pickle.UnpicklingError(f"a numpy dtype state declaring {elsize!r} bytes per element (at most {NUMPY_ITEMSIZE_MAX})")
    elif isinstance(target, np.ndarray):
        _vet_numpy_array_state(state)


def _vet_numpy_array_state(state: Any) -> None:
    """(version, shape, dtype, is_fortran, data): the data must hold exactly the elements the shape
    declares (numpy trusts an object array's list length, and crashes or allocates on a mismatch)."""
    if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[1], tuple)):
        raise pickle.UnpicklingError("a numpy array state that is not (version, shape, dtype, fortran, data)")
    _, shape, dtype, _, data = state
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in shape):
        raise pickle.UnpicklingError("a numpy array shape that is not a tuple of non-negative integers")
    dtype = _checked_dtype(dtype)
    count = math.prod(shape)
    if dtype.hasobject:
        held = len(data) if isinstance(data, list) else -1
    else:
        held = len(data) // dtype.itemsize if isinstance(data, (bytes, bytearray)) and dtype.itemsize else -1
        if isinstance(data, (bytes, bytearray)) and len(data) != count * dtype.itemsize:
            held = -1
    if held != count:
        raise pickle.UnpicklingError(f"a numpy array of shape {list(shape)} whose data does not hold exactly {count} elements")


def _torch_global(name: str) -> Any:
    return getattr(torch, name)


_TORCH_DTYPES = (
    "float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "bool",
    "half", "float", "double", "long", "int",
)

# The whole allow-list: (module, name) -> what the file gets. Nothing else resolves.
ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib", "EasyDict"): EasyDict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("torch", "device"): torch.device,
    ("torch", "Size"): torch.Size,
    **{("torch", name): _torch_global(name) for name in _TORCH_DTYPES},
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy", "ndarray"): _NumpyArrayType,
    **{(core, "scalar"): _numpy_scalar for core in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(core, "_reconstruct"): _numpy_reconstruct for core in ("numpy.core.multiarray", "numpy._core.multiarray")},
}

_MUTATING = (pickle.BUILD, pickle.SETITEM, pickle.SETITEMS, pickle.APPEND, pickle.APPENDS, pickle.ADDITEMS)
_REFUSED = (pickle.EXT1, pickle.EXT2, pickle.EXT4, pickle.PERSID, pickle.BINPERSID)


def _target_position(op: bytes) -> tuple[bool, int]:
    """Where the object an opcode mutates sits: (below the last MARK?, index) before the op runs."""
    if op == pickle.BUILD or op == pickle.APPEND:
        return False, -2
    if op == pickle.SETITEM:
        return False, -3
    return True, -1  # SETITEMS / APPENDS / ADDITEMS: the object under the MARK


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler that resolves only `ALLOWED`, lets a file change only objects it created itself,
    and bounds what a file can make it read or build.

    It extends the pure-Python unpickler because the C one offers no way to vet BUILD / SETITEM /
    APPEND before they run: without that, a file could BUILD onto an allow-listed function (say,
    replace its __defaults__) and change how the next file loads in the same process.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, fh: IO[bytes], size: int) -> None:
        super().__init__(_BoundedReader(fh, size))
        self._globals: dict[int, Any] = {}  # id -> every object find_class handed out (kept alive)
        self._ops = 0

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in ALLOWED:
            obj = ALLOWED[key]
            self._globals[id(obj)] = obj
            return obj
        if module.startswith("dnnlib.tflib"):
            raise TensorFlowPickle(f"{module}.{name}")
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")

    def persistent_load(self, pid: Any) -> Any:  # pragma: no cover - the opcodes are refused earlier
        raise pickle.UnpicklingError("persistent ids are not allowed in a network pickle")

    def _vet(self, op: bytes) -> None:
        self._ops += 1
        if self._ops > PICKLE_OPS_MAX:
            raise pickle.UnpicklingError(f"more than {PICKLE_OPS_MAX} pickle operations")
        if op in _REFUSED:
            raise pickle.UnpicklingError(f"opcode {op!r} is not allowed in a network pickle")
        if op in _MUTATING:
            under_mark, index = _target_position(op)
            stack = self.metastack[-1] if under_mark and self.metastack else self.stack
            target = stack[index] if len(stack) >= -index else None
            if id(target) in self._globals or isinstance(target, (type, types.FunctionType, types.BuiltinFunctionType, types.ModuleType)):
                raise pickle.UnpicklingError(f"the file tries to modify '{getattr(target, '__name__', type(target).__name__)}', which it did not create")
            if op == pickle.BUILD and len(self.stack) >= 2:
                _vet_build(target, self.stack[-1])


def _vetted(op: int, handler: Any) -> Any:
    def run(self: RestrictedUnpickler) -> None:
        self._vet(bytes([op]))
        handler(self)

    return run


RestrictedUnpickler.dispatch = {op: _vetted(op, handler) for op, handler in pickle._Unpickler.dispatch.items()}


class _BoundedReader:
    """The file as the unpickler sees it: a read longer than what is left fails before allocating."""

    def __init__(self, fh: IO[bytes], size: int) -> None:
        self._fh = fh
        self._left = size

    def read(self, n: int = -1) -> bytes:
        if n is not None and n > self._left:
            raise pickle.UnpicklingError(f"declares {n} bytes where only {self._left} remain")
        data = self._fh.read(n)
        self._left -= len(data)
        return data

    def readline(self) -> bytes:
        data = self._fh.readline()
        self._left -= len(data)
        return data


def _children(obj: Any) -> list[Any]:
    """What a loaded object contains, for the nesting check (persistent modules, containers, object arrays)."""
    if isinstance(obj, PersistentObject):
        return [obj.state]
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return list(obj)
    if getattr(obj, "dtype", None) is not None and getattr(obj.dtype, "hasobject", False):
        return list(obj.flat)
    return []


def safe_load(source: str | Path | IO[bytes], what: str | None = None) -> Any:
    """Unpickle `source` (a path or a seekable binary stream) with the restricted unpickler.

    BadInput (exit 2) on anything refused: a global outside the allow-list, a file that modifies an
    object it did not create, a size it does not hold, nesting deeper than NESTING_MAX.
    """
    label = what or (str(source) if isinstance(source, (str, Path)) else "pickle")
    try:
        if isinstance(source, (str, Path)):
            with open_regular(source, label) as fh:  # never blocks on a FIFO
                data = RestrictedUnpickler(fh, os.fstat(fh.fileno()).st_size).load()
        else:
            start = source.tell()
            left = source.seek(0, io.SEEK_END) - start
            source.seek(start)
            data = RestrictedUnpickler(source, left).load()
    except TensorFlowPickle:
        raise BadInput(
            f"{label} is an original TensorFlow StyleGAN pickle, which stylekit does not read",
            hint="convert it once with NVlabs stylegan2-ada-pytorch 'legacy.py --source IN --dest OUT' "
            "in an environment you trust, or use the PyTorch release of the same network",
        ) from None
    except pickle.UnpicklingError as exc:
        raise BadInput(
            f"{label}: refused to unpickle ({exc}); a network snapshot needs only tensors and dicts",
            hint="only load network files from sources you trust; stylekit reads NVlabs snapshots, "
            "rosinality .pt and stylekit .safetensors",
        ) from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, RuntimeError) as exc:  # never MemoryError: not a refusal
        raise BadInput(f"{label}: not a readable network pickle ({type(exc).__name__}: {exc})", hint="is the file complete?") from None
    check_nesting(data, label, _children)
    return data
