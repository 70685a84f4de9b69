"""The restricted unpickler: a file changes nothing outside itself, and deep nesting is a clear exit 2."""

from __future__ import annotations

import collections
import io
import pickle

import numpy as np
import pytest
import torch
import torch._utils
from hostile_files import body, glob, nested_lists, pkl
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.errors import BadInput
from stylekit.io.safe_pickle import ALLOWED, safe_load

runner = CliRunner()
_ATTRS = ("__defaults__", "__kwdefaults__", "__code__", "__init__", "__new__", "__setstate__", "__getitem__")


def _fingerprint(obj: object) -> tuple:
    own = dict(vars(obj)) if hasattr(obj, "__dict__") else None
    return own, tuple(getattr(obj, name, None) for name in _ATTRS)


def _every_global() -> dict[str, object]:
    """Everything a file can name, plus the torch functions the allow-list stands in for."""
    out = {f"{m}.{n}": obj for (m, n), obj in ALLOWED.items()}
    for name in ("_rebuild_tensor_v2", "_rebuild_tensor", "_rebuild_parameter", "_rebuild_parameter_with_state"):
        out[f"torch._utils.{name}"] = getattr(torch._utils, name)
    out["torch.storage._load_from_bytes"] = torch.storage._load_from_bytes
    return out


@pytest.fixture
def unchanged_globals():
    before = {name: _fingerprint(obj) for name, obj in _every_global().items()}
    f32 = np.dtype("float32")
    yield
    changed = [name for name, obj in _every_global().items() if _fingerprint(obj) != before[name]]
    assert changed == []
    assert np.dtype("float32") is f32 and f32.str == "<f4" and f32.byteorder == "="


def _hostile_mutations() -> list[tuple[str, bytes]]:
    cases = []
    for module, name in ALLOWED:
        g = glob(module, name)
        cases += [
            (f"BUILD slots {name}", pkl(g, body((None, {"__defaults__": (1,), "__init__": None})), b"b")),
            (f"BUILD dict {name}", pkl(g, body({"marker": 1}), b"b")),
            (f"SETITEM {name}", pkl(g, body("k"), body("v"), b"s")),
            (f"SETITEMS {name}", pkl(g, b"(", body("k"), body("v"), b"u")),
            (f"APPEND {name}", pkl(g, body(1), b"a")),
            (f"APPENDS {name}", pkl(g, b"(", body(1), b"e")),
            (f"ADDITEMS {name}", pkl(g, b"(", body(1), b"\x90")),
        ]
    # A global laundered through numpy's object scalar (which returns its argument) is still refused.
    laundered = pkl(glob("numpy._core.multiarray", "scalar"), glob("numpy", "dtype"), body(("O", False, True)), b"R",
                    glob("dnnlib.util", "EasyDict"), b"\x86R", body((None, {"__init__": None})), b"b")
    cases.append(("laundered EasyDict", laundered))
    return cases


@pytest.mark.parametrize("label,data", _hostile_mutations(), ids=[c[0] for c in _hostile_mutations()])
def test_a_file_cannot_modify_any_allow_listed_global(label, data, unchanged_globals):
    with pytest.raises(BadInput) as err:
        safe_load(io.BytesIO(data), what="hostile.pkl")
    assert "hostile.pkl" in err.value.message


def test_numpy_dtype_state_lands_on_a_fresh_copy(unchanged_globals):
    # np.dtype(..., copy=False) is numpy's shared float32; BUILD must not reach it.
    data = pkl(glob("numpy", "dtype"), body(("f4", False, False)), b"R", body((3, ">", None, None, None, -1, -1, 0)), b"b")
    loaded = safe_load(io.BytesIO(data))
    assert loaded is not np.dtype("float32") and loaded.byteorder == ">"


@pytest.mark.parametrize("attack", ["ndarray-call", "ndarray-newobj", "reconstruct-big"])
def test_numpy_arrays_cannot_be_sized_by_the_file(attack, unchanged_globals):
    huge = body(((1 << 40,),))
    data = {
        "ndarray-call": pkl(glob("numpy", "ndarray"), huge, b"R"),
        "ndarray-newobj": pkl(glob("numpy", "ndarray"), huge, b"\x81"),
        "reconstruct-big": pkl(glob("numpy._core.multiarray", "_reconstruct"), glob("numpy", "ndarray"),
                               body((1 << 40,)), body(b"b"), b"\x87R"),
    }[attack]
    with pytest.raises(BadInput):
        safe_load(io.BytesIO(data))


def test_legitimate_containers_still_load(unchanged_globals):
    value = {"a": [1, 2, {"b": (3.5, "x")}], "c": collections.OrderedDict(d=set([1]))}
    assert safe_load(io.BytesIO(pickle.dumps(value, protocol=4))) == value
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert np.array_equal(safe_load(io.BytesIO(pickle.dumps(arr, protocol=4))), arr)


@pytest.mark.parametrize("data,message", [
    (nested_lists(50_000), "nests containers more than 100 deep"),
    (pkl(b"]q\x00h\x00a"), "reference cycle"),
], ids=["deep", "cycle"])
def test_deep_or_cyclic_pickle_is_a_clear_exit_2(data, message, tmp_path):
    path = tmp_path / "deep.pkl"
    path.write_bytes(data)
    res = runner.invoke(app, ["generate", "--network", str(path), "--seeds", "0", "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert message in res.stderr and str(path) in res.stderr and "Traceback" not in res.output
    assert not list(tmp_path.glob("out/*.png"))


def test_a_diamond_shaped_pickle_is_walked_once():
    # 60 levels where each holds its child twice: 2**60 paths, 60 distinct lists.
    ops = b"]q\x00"  # memo 0 = innermost list
    for _ in range(59):
        ops += b"(h\x00h\x00lq\x00"  # a new list holding the previous one twice
    loaded = safe_load(io.BytesIO(pkl(ops)))
    depth = 0
    while loaded:
        loaded, depth = loaded[0], depth + 1
    assert depth == 59


@pytest.mark.parametrize("header", [
    body(1) + b"." + glob("torch", "FloatStorage") + body((1 << 40,)) + b"R.",  # a storage built in the header
    b"]" * 5000 + b".",  # a header far longer than torch.save writes
], ids=["storage-call", "long-header"])
def test_storage_payload_headers_build_nothing(header):
    data = pkl(glob("torch.storage", "_load_from_bytes"), body((b"\x80\x02" + header,)), b"R")
    with pytest.raises(BadInput):
        safe_load(io.BytesIO(data))
