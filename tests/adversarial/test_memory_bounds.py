"""Issue 24 items 4-8: what reading a file costs is bounded from its structure before memory is taken.

Each hostile file is small (a few KB to 2 MB) and made an unfixed loader take 1-2.4 GB. All cases run
in one child (peak_rss.py) that reports, per command, the exit code, the output and the peak resident
memory the command added. A case passes only with its refusal message AND a peak far below what the
attack takes, so a loader that allocates and then fails (MemoryError at the child's address-space
cap, exit 1 or an unrelated exit 2) cannot pass. Controls (legitimate files) run in the same child.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hostile_files import (
    deflate_bomb_pt,
    legacy_storage_size_pt,
    lying_safetensors,
    many_views_snapshot,
    numpy_dtype_state_scalars,
    numpy_object_array_short_list,
    numpy_void_scalars,
    shared_g_snapshot,
    tensor_state_zero_stride,
    zero_stride_pt,
)
from peak_rss import run_measured
from PIL import Image

from stylekit.metrics.style import export_style_model
from stylekit.nets.style_embedding import StyleNet, StyleNetConfig

REFUSAL_MB = 200  # a refusal reads a header or a few KB; every attack here took more than 1000 MB


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _png(path: Path, colour: tuple[int, int, int] = (200, 40, 40)) -> Path:
    Image.new("RGB", (32, 32), colour).save(path)
    return path


def _generate(net: Path) -> list[str]:
    return ["generate", "--network", net, "--seeds", "0", "--device", "cpu", "--out", net.parent / f"{net.stem}-out"]


def _load_network(net: Path) -> dict[str, str]:
    """The library door (`load_network`, behind every --network option), without a command's own checks first."""
    return {"py": f"from stylekit.nets.stylegan2.load import load_network\nload_network({str(net)!r})"}


def _nvlabs_state(root: Path) -> list[str]:
    (root / "zs.json").write_text("{}")
    return _generate(_write(root / "zs.pt", zero_stride_pt()))


def _bomb(root: Path) -> Path:
    return deflate_bomb_pt(root / "bomb.pt")


def _transfer(root: Path) -> list[str]:
    return ["transfer", _png(root / "c.png"), _png(root / "s.png", (10, 10, 200)), "--vgg-weights", _bomb(root),
            "--device", "cpu", "--out", root / "o.png"]


def _invert(root: Path) -> list[str]:
    return ["invert", _png(root / "t.png"), "--network", _write(root / "v.pkl", numpy_void_scalars()), "--device", "cpu",
            "--out", root / "inv"]


def _styleclip(root: Path) -> list[str]:
    return ["styleclip", "--network", _bomb(root), "--latent-seed", "1", "--prompt", "x", "--device", "cpu", "--out", root / "s"]


def _score(root: Path) -> list[str]:
    (root / "a").mkdir()
    for i in range(3):
        _png(root / "a" / f"{i}.png", (60 * i, 40, 40))
    return ["score", root / "a", "--network", _write(root / "t.pkl", tensor_state_zero_stride()), "--metrics", "kid",
            "--num-gen", "2", "--device", "cpu"]


def _style_model(root: Path, kind: str) -> Path:
    folder = root / "sm"
    export_style_model(StyleNet(StyleNetConfig("small-cnn", 2, 8)), folder, {"size": 16, "classes": ["a", "b"]})
    weights = next(folder.glob("*.safetensors"))
    weights.write_bytes(lying_safetensors(kind))
    return folder


def _classify(root: Path) -> list[str]:
    return ["classify", _png(root / "q.png"), "--style-model", _style_model(root, "offsets"), "--device", "cpu"]


def _similar(root: Path) -> list[str]:
    (root / "db").mkdir()
    _png(root / "db" / "0.png")
    return ["similar", _png(root / "q.png"), "--in", root / "db", "--no-cache", "--style-model", _style_model(root, "shape"),
            "--device", "cpu"]


def _library(code: str) -> Callable[[Path], dict[str, str]]:
    """A library door without its own command: `code` runs in the child with PATH set to the bomb."""
    return lambda root: {"py": f"from pathlib import Path\nPATH = Path({str(_bomb(root))!r})\n{code}"}


def _resume(root: Path) -> dict[str, str]:
    """The door every trainer's resume goes through: read_checkpoint of OUT/checkpoints/ckpt-N."""
    import torch

    from stylekit.io.checkpoint import CheckpointManager

    info = CheckpointManager(root / "checkpoints").save(10, {"net": {"w": torch.zeros(2)}}, {"opt": {}}, {"counters": {}})
    deflate_bomb_pt(info.path / "state.pt")
    return {"py": f"from stylekit.io.checkpoint import read_checkpoint\nread_checkpoint({str(info.path)!r})"}


def _prepare(root: Path, mode: str) -> list[str]:
    src = root / "src"
    src.mkdir()
    Image.new(mode, (9000, 9000)).save(src / "big.png")  # ~160 KB of zeros
    return ["prepare", src, root / "out", "--size", "32", "--workers", "1"]


ZIP_BOMB = "inflates"  # "... zip member archive/data/0 inflates 536K bytes to 536870912 (more than 100x ...: a zip bomb)"
VIEWS = "its tensors declare"
# name -> (make(root) -> command, exit code, text the output must hold, peak bound in MB)
CASES: dict[str, tuple[Callable[[Path], object], int, str, float]] = {
    "pkl-numpy-void-scalar": (lambda r: _generate(_write(r / "v.pkl", numpy_void_scalars())), 2,
                              "a numpy dtype of 419430400 bytes per element (at most 64)", REFUSAL_MB),
    "pkl-numpy-dtype-state": (lambda r: _generate(_write(r / "d.pkl", numpy_dtype_state_scalars())), 2,
                              "a numpy dtype state declaring 419430400 bytes per element", REFUSAL_MB),
    "pkl-tensor-setstate-zero-stride": (lambda r: _generate(_write(r / "t.pkl", tensor_state_zero_stride())), 2,
                                        "sets the state of a tensor directly (BUILD)", REFUSAL_MB),
    "pkl-many-views-one-storage": (lambda r: _load_network(_write(r / "m.pkl", many_views_snapshot())), 2, VIEWS, REFUSAL_MB),
    "pt-zero-stride-nvlabs-state": (_nvlabs_state, 2, "its tensors declare 536870912 bytes but share storages holding 2",
                                    REFUSAL_MB),
    "pt-zip-bomb-generate": (lambda r: _generate(_bomb(r)), 2, ZIP_BOMB, REFUSAL_MB),
    "pt-legacy-storage-size": (lambda r: _generate(_write(r / "l.pt", legacy_storage_size_pt())), 2,
                               "its storages declare 1073741824 bytes but the file holds 368", REFUSAL_MB),
    "pt-zip-bomb-transfer-vgg": (_transfer, 2, ZIP_BOMB, REFUSAL_MB),
    "pt-zip-bomb-styleclip": (_styleclip, 2, ZIP_BOMB, REFUSAL_MB),
    "pt-zip-bomb-inception": (_library("from stylekit.metrics.fid import load_fid_inception\nload_fid_inception(PATH)"),
                              2, ZIP_BOMB, REFUSAL_MB),
    "pt-zip-bomb-retinaface": (_library("from stylekit.nets.retinaface import load_face_detector\nload_face_detector(PATH)"),
                               2, ZIP_BOMB, REFUSAL_MB),
    "pt-zip-bomb-lpips": (_library("from stylekit.nets.lpips import load_lpips\nload_lpips(PATH)"), 2, ZIP_BOMB, REFUSAL_MB),
    "pt-zip-bomb-clip": (_library("from stylekit.nets.clip import load_clip\nload_clip('ViT-B-32', PATH)"), 2, ZIP_BOMB,
                         REFUSAL_MB),
    "pt-zip-bomb-resume-state": (_resume, 2, ZIP_BOMB, REFUSAL_MB),
    "pkl-void-scalar-invert": (_invert, 2, "a numpy dtype of 419430400 bytes per element", REFUSAL_MB),
    "pkl-tensor-setstate-score-network": (_score, 2, "sets the state of a tensor directly", REFUSAL_MB),
    "safetensors-offsets-classify": (_classify, 2, "style model", REFUSAL_MB),
    "safetensors-shape-similar": (_similar, 2, "style model", REFUSAL_MB),
    "safetensors-offsets-generate": (lambda r: _generate(_write(r / "o.safetensors", lying_safetensors("offsets"))), 2,
                                     "o.safetensors", REFUSAL_MB),
    "safetensors-header-length-generate": (lambda r: _generate(_write(r / "h.safetensors", lying_safetensors("header-length"))),
                                           2, "h.safetensors", REFUSAL_MB),
    "safetensors-overlap-generate": (lambda r: _generate(_write(r / "v.safetensors", lying_safetensors("overlap"))), 2,
                                     "v.safetensors", REFUSAL_MB),
    # A legitimate 9000 x 9000 16-bit greyscale PNG: prepared, at the cost of an 8-bit RGB one (2.4 GB before).
    "png-16bit-grey-prepare": (lambda r: _prepare(r, "I;16"), 0, "", 800),
    # Controls: legitimate files load under the same child.
    "legit-G-is-G_ema-pickle": (lambda r: _generate(_write(r / "shared.pkl", shared_g_snapshot())), 0, "", 300),
    "legit-png-8bit-rgb-prepare": (lambda r: _prepare(r, "RGB"), 0, "", 800),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    commands = {}
    for name, (make, *_rest) in CASES.items():
        root = tmp_path_factory.mktemp(name)
        commands[name] = make(root)
        sizes = [p.stat().st_size for p in root.rglob("*") if p.is_file()]
        assert max(sizes) < 3 << 20  # every input is small
    return dict(zip(commands, run_measured(list(commands.values())), strict=True))


@pytest.mark.parametrize("name", list(CASES))
def test_reading_cost_is_bounded_before_memory_is_taken(name, results):
    _, code, text, bound = CASES[name]
    got = results[name]
    assert got["code"] == code and text in got["output"], got
    assert got["peak_mb"] < bound, f"{name}: peak {got['peak_mb']:.0f} MB (bound {bound} MB)"
    assert "Traceback" not in got["output"] and "MemoryError" not in got["output"]


def test_numpy_object_array_with_a_short_list_is_refused_not_crashed(tmp_path):
    """numpy trusts an object array state's list length: 10**7 declared, 1 held crashed the process."""
    net = _write(tmp_path / "o.pkl", numpy_object_array_short_list())
    (got,) = run_measured([_generate(net)])
    assert got["code"] == 2 and "does not hold exactly 10000000 elements" in got["output"], got
    assert got["peak_mb"] < REFUSAL_MB
