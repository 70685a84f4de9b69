"""Builders for hostile pickles, written from opcodes so each file is exactly the attack it names."""

from __future__ import annotations

import collections
import contextlib
import pickle
import struct
import sys
import types
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def body(obj: Any) -> bytes:
    """The opcodes that push `obj` (protocol 3: no frames, so pieces concatenate)."""
    return pickle.dumps(obj, protocol=3)[2:-1]


def glob(module: str, name: str) -> bytes:
    return f"c{module}\n{name}\n".encode()


def pkl(*parts: bytes) -> bytes:
    return b"\x80\x03" + b"".join(parts) + b"."


def nested_lists(depth: int) -> bytes:
    """A list inside a list ... `depth` deep, in 2 bytes per level."""
    return pkl(b"]" * depth + b"a" * (depth - 1))


def _reconstruct_persistent_obj(meta: Any) -> Any:  # only its name ends up in the file
    raise AssertionError("never called")


class Persistent:
    """Pickles like an NVlabs persistent module: torch_utils.persistence._reconstruct_persistent_obj(meta)."""

    def __init__(self, class_name: str, state: dict[str, Any]) -> None:
        self.meta = {"type": "class", "version": 6, "module_src": "", "class_name": class_name, "state": state}

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (_reconstruct_persistent_obj, (self.meta,))


@contextlib.contextmanager
def nvlabs_names() -> Iterator[None]:
    """Let pickle name `_reconstruct_persistent_obj` as NVlabs' torch_utils.persistence does."""
    saved = {k: sys.modules.get(k) for k in ("torch_utils", "torch_utils.persistence")}
    mod = types.ModuleType("torch_utils.persistence")
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    mod._reconstruct_persistent_obj = _reconstruct_persistent_obj  # type: ignore[attr-defined]
    sys.modules["torch_utils"] = types.ModuleType("torch_utils")
    sys.modules["torch_utils.persistence"] = mod
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = value


def nvlabs_snapshot(init_kwargs: dict[str, Any], parameters: dict[str, Any] | None = None) -> bytes:
    """A G_ema-only snapshot pickle with the given init kwargs and top-level parameters."""
    synthesis = Persistent("SynthesisNetwork", {"_modules": {"b4": Persistent("SynthesisBlock", {})}})
    state = {"_parameters": parameters or {}, "_modules": {"synthesis": synthesis}, "_init_args": (), "_init_kwargs": init_kwargs}
    with nvlabs_names():
        return pickle.dumps({"G_ema": Persistent("Generator", state)}, protocol=4)


def zero_bomb_zip(path: Path, name: str, size: int, extra: dict[str, bytes] | None = None) -> Path:
    """A zip whose member `name` inflates to `size` zero bytes from about size/1000 bytes on disk.

    One deflate block of 64 MiB zeros ends in a full flush (byte-aligned, no back-references), so it
    can be repeated; writing the archive takes a fraction of a second. The CRC is left at 0: a reader
    that inflates the member before checking anything has already allocated it.
    """
    chunk = 64 << 20
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(bytes(chunk)) + comp.flush(zlib.Z_FULL_FLUSH)
    data = block * (size // chunk) + zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    members = [(n, zlib.compress(b, 9)[2:-4], len(b), zlib.crc32(b)) for n, b in (extra or {}).items()]
    members.append((name, data, size, 0))
    out, central = bytearray(), bytearray()
    for member, payload, raw_size, crc in members:
        encoded = member.encode()
        header = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(payload), raw_size, len(encoded), 0)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(payload), raw_size,
                               len(encoded), 0, 0, 0, 0, 0, len(out)) + encoded
        out += header + encoded + payload
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(out), 0)
    path.write_bytes(bytes(out + central) + end)
    return path


def zero_stride_snapshot() -> bytes:
    """A snapshot whose one float16 parameter is a 2**18 x 2**18 view with zero strides over 4 elements."""
    import torch

    class View:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            storage = torch.zeros(4, dtype=torch.float16).untyped_storage()
            typed = torch.storage.TypedStorage(wrap_storage=storage, dtype=torch.float16, _internal=True)
            return (torch._utils._rebuild_tensor_v2, (typed, 0, (1 << 18, 1 << 18), (0, 0), False, collections.OrderedDict()))

    return nvlabs_snapshot({"z_dim": 8, "c_dim": 0, "w_dim": 8, "img_resolution": 8}, {"w": View()})


def storage_size_bomb() -> bytes:
    """A 16-byte float32 storage whose torch.save payload declares 2**33 elements (32 GiB)."""
    import torch

    typed = torch.storage.TypedStorage(wrap_storage=torch.zeros(4).untyped_storage(), dtype=torch.float32, _internal=True)
    payload = bytearray(typed.__reduce__()[1][0])
    at = payload.index(b"K\x04N")  # BININT1 4 (the element count), then NONE (view metadata)
    payload[at:at + 2] = b"\x8a\x05" + (1 << 33).to_bytes(5, "little")
    return pkl(glob("torch.storage", "_load_from_bytes"), body((bytes(payload),)), b"R")


def long_bytes_bomb() -> bytes:
    """A pickle whose BINBYTES8 declares 1 TiB and holds nothing."""
    return pkl(b"\x8e" + (1 << 40).to_bytes(8, "little"))


# --- issue 24: files whose reading cost is hidden in their structure -------------------------------

BIG = 400 << 20  # 400 MiB: three of them, or one 1 GiB view, are what each unfixed loader took


def _dtype(code: str) -> bytes:
    return glob("numpy", "dtype") + body((code, False, True)) + b"R"


def numpy_void_scalars(n: int = BIG, count: int = 3) -> bytes:
    """`count` numpy scalars of dtype('V<n>') built without data: numpy zero-fills n bytes for each."""
    one = glob("numpy._core.multiarray", "scalar") + _dtype(f"V{n}") + b"\x85R"
    return pkl(b"(" + one * count + b"l")


def numpy_dtype_state_scalars(n: int = BIG, count: int = 3) -> bytes:
    """A 'V8' dtype whose BUILD state declares n bytes per element, then `count` scalars of it."""
    state = body((3, "|", None, None, None, n, 1, 16))
    one = glob("numpy._core.multiarray", "scalar") + _dtype("V8") + state + b"b\x85R"
    return pkl(b"(" + one * count + b"l")


def numpy_object_array_short_list(count: int = 10 ** 7) -> bytes:
    """An object array whose state declares `count` elements and holds a list of one (numpy crashes)."""
    array = glob("numpy._core.multiarray", "_reconstruct") + b"(" + glob("numpy", "ndarray") + body((0,)) + body(b"b") + b"tR"
    state = b"(" + body(1) + body((count,)) + _dtype("O8") + body(False) + body([1]) + b"t"
    return pkl(array + state + b"b")


def _typed(n: int, dtype: Any) -> Any:
    import torch

    return torch.storage.TypedStorage(wrap_storage=torch.zeros(n, dtype=dtype).untyped_storage(), dtype=dtype, _internal=True)


def tensor_state_zero_stride(side: int = 1 << 14) -> bytes:
    """A snapshot parameter built small, then given a (side, side) zero-stride float16 view by BUILD
    (Tensor.__setstate__ -> set_): 2 GiB once converted to float32."""
    import torch

    typed = _typed(4, torch.float16)

    class View:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            args = (typed, 0, (4,), (1,), False, collections.OrderedDict())
            return (torch._utils._rebuild_tensor_v2, args, (typed, 0, torch.Size([side, side]), (0, 0)))

    return nvlabs_snapshot({"z_dim": 8, "c_dim": 0, "w_dim": 8, "img_resolution": 8}, {"w": View()})


def many_views_snapshot(elements: int = 1 << 20, views: int = 300) -> bytes:
    """`views` parameters, each a different view (offset i) of one 2 MiB float16 storage: every view
    is inside the storage, but together they declare 600 MiB (1.2 GiB as float32)."""
    import torch

    typed = _typed(elements, torch.float16)

    class View:
        def __init__(self, i: int) -> None:
            self.i = i

        def __reduce__(self):  # type: ignore[no-untyped-def]
            args = (typed, self.i, (elements - views,), (1,), False, collections.OrderedDict())
            return (torch._utils._rebuild_tensor_v2, args)

    return nvlabs_snapshot({"z_dim": 8, "c_dim": 0, "w_dim": 8, "img_resolution": 8}, {f"w{i}": View(i) for i in range(views)})


def shared_g_snapshot() -> bytes:
    """A legitimate NVlabs-style snapshot of a tiny generator in which G and G_ema are one object."""
    from stylekit.nets.stylegan2.tiny import tiny_generator

    G = tiny_generator(16, seed=1)
    modules: dict[str, Any] = {}
    for name, tensor in G.state_dict().items():
        *path, leaf = name.split(".")
        modules.setdefault(tuple(path), {})[leaf] = tensor

    def module(path: tuple[str, ...], class_name: str) -> Persistent:
        children = sorted({p[len(path)] for p in modules if len(p) > len(path) and p[:len(path)] == path})
        state = {"_parameters": modules.get(path, {}), "_buffers": {},
                 "_modules": {c: module((*path, c), "Module") for c in children}}
        if not path:
            state.update({"_init_args": (), "_init_kwargs": G.init_kwargs})
        return Persistent(class_name, state)

    g = module((), "Generator")
    with nvlabs_names():
        return pickle.dumps({"G": g, "G_ema": g}, protocol=4)


def zero_stride_pt(side: int = 1 << 14) -> bytes:
    """A torch.save (zip) state dict whose one float16 tensor is a (side, side) zero-stride view of one
    element: weights_only accepts it; converting it to float32 takes 1 GiB."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save({"synthesis.b4.const": torch.zeros(1, dtype=torch.float16).expand(side, side)}, buf)
    return buf.getvalue()


def deflate_bomb_pt(path: Path, size: int = 512 << 20) -> Path:
    """A torch.save zip whose storage member is deflated: ~0.5 MB on disk, `size` bytes once inflated
    (the pickle declares the storage at that size, so torch reads the whole member)."""
    import io
    import zipfile

    import torch

    buf = io.BytesIO()
    torch.save({"w": torch.zeros(4)}, buf)
    zf = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    members = {n: zf.read(n) for n in zf.namelist() if not n.endswith("data/0")}
    pkl_name = next(n for n in members if n.endswith("data.pkl"))
    members[pkl_name] = members[pkl_name].replace(b"cpuq\x06K\x04t", b"cpuq\x06J" + (size // 4).to_bytes(4, "little") + b"t")
    data_name = pkl_name.replace("data.pkl", "data/0")
    return zero_bomb_zip(path, data_name, size, extra=members)


def lying_safetensors(kind: str) -> bytes:
    """A safetensors file whose header lies: offsets past the end, a header length of 1 TiB, a shape
    larger than its byte range, or two tensors over the same bytes."""
    import json

    tensors = {
        "offsets": {"w": {"dtype": "F32", "shape": [1 << 28], "data_offsets": [0, 1 << 30]}},
        "shape": {"w": {"dtype": "F32", "shape": [1 << 28], "data_offsets": [0, 16]}},
        "overlap": {f"w{i}": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]} for i in range(2)},
        "header-length": {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}},
    }[kind]
    header = json.dumps(tensors).encode()
    declared = (1 << 40) if kind == "header-length" else len(header)
    return declared.to_bytes(8, "little") + header + bytes(16)


def legacy_storage_size_pt(elements: int = 1 << 28) -> bytes:
    """A legacy (non-zip) torch.save file of 368 bytes whose one storage declares `elements` floats (1 GiB)."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save({"w": torch.zeros(4)}, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue().replace(b"cpuq\x06K\x04N", b"cpuq\x06J" + elements.to_bytes(4, "little") + b"N")
