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
