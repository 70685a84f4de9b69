"""Builders for hostile pickles, written from opcodes so each file is exactly the attack it names."""

from __future__ import annotations

import contextlib
import pickle
import sys
import types
from collections.abc import Iterator
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
