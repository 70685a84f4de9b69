"""Say in a few words what a file or folder is, for error messages ("a PNG image", "a train-pix2pix run").

Only magic bytes and stylekit's own metadata are read; nothing is unpickled or decoded.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

_MAGIC = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
          (b"RIFF", "a RIFF (WebP/WAV) file"), (b"\x1f\x8b", "a gzip file"), (b"%PDF", "a PDF document"))

# module sets of a run directory's checkpoints -> the command that wrote them
_RUN_KINDS = ((frozenset({"G", "D", "G_ema"}), "a finetune-stylegan run directory"),
              (frozenset({"model"}), "a train-classifier run directory"),
              (frozenset({"G", "D"}), "a train-pix2pix run directory"))


def _safetensors_format(path: Path, head: bytes) -> str | None:
    if len(head) < 10 or head[8:9] != b"{":
        return None
    (n,) = struct.unpack("<Q", head[:8])
    if not 2 <= n < 100_000_000:
        return None
    try:
        with open(path, "rb") as fh:
            fh.seek(8)
            header = json.loads(fh.read(n))
    except (OSError, ValueError):
        return "a damaged safetensors file"
    meta = header.get("__metadata__") or {} if isinstance(header, dict) else {}
    fmt, module = meta.get("format"), meta.get("module")
    if fmt == "stylekit-checkpoint" and module:
        return f"a stylekit checkpoint file of module '{module}'"
    return f"a safetensors file (format {fmt!r})" if fmt else "a safetensors file without stylekit metadata"


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return "a truncated or damaged zip/torch archive"
    if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        return "a torch.save archive"
    return f"a zip archive of {len(names)} entries"


def _run_dir_kind(folder: Path) -> str:
    ckpts = folder / "checkpoints"
    metas = sorted(ckpts.glob("ckpt-*/meta.json")) if ckpts.is_dir() else []
    for meta_path in reversed(metas):
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        modules = set(meta.get("modules") or [])
        for needed, kind in _RUN_KINDS:
            if needed <= modules:
                return kind
    if (folder / "config.json").is_file():
        return "a run directory without a known checkpoint"
    return "a folder"


def describe(path: str | Path) -> str:
    """A short noun phrase for what `path` is."""
    path = Path(path)
    if path.is_dir():
        return _run_dir_kind(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except FileNotFoundError:
        return "a path that does not exist"
    except OSError as exc:
        return f"an unreadable file ({exc.strerror})"
    if not head:
        return "an empty file"
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head.startswith(b"PK"):
        return _zip_kind(path)
    safetensors = _safetensors_format(path, head)
    if safetensors:
        return safetensors
    if head[:1] == b"\x80":
        return "a Python pickle"
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "binary data of unknown format"
