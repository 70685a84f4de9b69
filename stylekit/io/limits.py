"""Bounds on everything stylekit reads from a file it did not write: one place for every size rule.

A small hostile (or damaged) file must never make stylekit allocate large memory, recurse without end
or run for ever. Loaders check what a file *declares* (network widths, embedding sizes, tensor
shapes, member sizes, nesting) against these bounds and against the bytes the file actually holds,
before anything is allocated. docs/security.md lists every bound and the loader that applies it.
"""

from __future__ import annotations

import zipfile
from typing import Any

from stylekit.errors import BadImage, BadInput

MiB = 1 << 20

# Networks (StyleGAN2 configs from .pkl/.pt/.safetensors, style-model heads). The largest published
# StyleGAN2 networks use 512-wide latents and channels and have ~30M parameters per network.
NET_WIDTH_MAX = 4096  # z_dim, w_dim, channel_max, mapping layer/embed features, cmap_dim
NET_CLASSES_MAX = 100_000  # c_dim (conditioning labels)
NET_RESOLUTION_MAX = 4096  # img_resolution
NET_IMG_CHANNELS_MAX = 16  # img_channels
NET_CHANNEL_BASE_MAX = 1 << 20  # channel_base
NET_LAYERS_MAX = 64  # mapping num_layers, num_fp16_res, freeze_layers, minibatch-std sizes
NET_PARAMS_MAX = 250_000_000  # parameters of one network once built (1 GB in float32)
EMBED_DIM_MAX = 65_536  # style-model projection_dim / embed_dim

# Pickles (NVlabs network snapshots) and structured files (JSON, TOML, pickled containers).
PICKLE_OPS_MAX = 20_000_000  # opcodes in one pickle (a 1024 px NVlabs snapshot needs well under 1M)
NESTING_MAX = 100  # containers inside containers (real files nest fewer than 20 deep)

# Image files inside zip archives read as image sets (score, finetune-stylegan).
IMAGE_MEMBER_BYTES_MAX = 256 * MiB  # one image file, uncompressed
ZIP_RATIO_MAX = 100  # uncompressed / compressed, for members over ZIP_RATIO_FLOOR
ZIP_RATIO_FLOOR = 1 * MiB


def check_int(value: Any, name: str, lo: int, hi: int, source: str) -> int:
    """`value` as an int in [lo, hi], else BadInput naming the file, the declared value and the bound."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{source}: declares {name}={value!r}, not an integer", hint="the file is damaged or not made for stylekit")
    if not lo <= value <= hi:
        raise BadInput(
            f"{source}: declares {name}={value}, outside the bound [{lo}, {hi}]",
            hint="the file is damaged or hostile; stylekit refuses it before allocating anything (see docs/security.md)",
        )
    return value


def check_nesting(value: Any, source: str, children: Any = None, limit: int = NESTING_MAX) -> None:
    """Refuse structures nested deeper than `limit` or holding a reference cycle, without recursing.

    `children(obj)` lists what to descend into (default: dict keys/values, list/tuple/set items).
    Shared sub-objects are visited once, so a small file cannot make this walk exponential.
    """
    children = children or _container_children
    done: set[int] = set()
    on_path: set[int] = set()
    stack: list[tuple[Any, Any]] = [(value, iter(children(value)))]
    on_path.add(id(value))
    while stack:
        obj, it = stack[-1]
        child = next(it, _END)
        if child is _END:
            stack.pop()
            on_path.discard(id(obj))
            done.add(id(obj))
            continue
        kids = children(child)
        if not kids or id(child) in done:
            continue
        if id(child) in on_path:
            raise BadInput(f"{source}: holds a reference cycle", hint="the file is damaged or hostile")
        if len(stack) >= limit:
            raise BadInput(f"{source}: nests containers more than {limit} deep", hint="the file is damaged or hostile")
        on_path.add(id(child))
        stack.append((child, iter(kids)))


_END = object()


def _container_children(obj: Any) -> list[Any]:
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return list(obj)
    return []


def read_image_member(zf: zipfile.ZipFile, member: str, label: str) -> bytes:
    """Read one image file from a zip with its declared and actual size bounded (BadImage otherwise).

    zipfile stops at the member's declared size, so checking the declaration bounds the bytes read.
    """
    info = zf.getinfo(member)
    if info.file_size > IMAGE_MEMBER_BYTES_MAX:
        raise BadImage(label, f"refused: declares {info.file_size} bytes, above the {IMAGE_MEMBER_BYTES_MAX // MiB} MiB image limit")
    if info.file_size > ZIP_RATIO_FLOOR and info.file_size > ZIP_RATIO_MAX * max(info.compress_size, 1):
        raise BadImage(
            label, f"refused: {info.compress_size} compressed bytes expand to {info.file_size} (more than {ZIP_RATIO_MAX}x, a zip bomb)"
        )
    with zf.open(info) as fh:
        data = fh.read(IMAGE_MEMBER_BYTES_MAX + 1)
    if len(data) > IMAGE_MEMBER_BYTES_MAX:  # pragma: no cover - zipfile already stops at file_size
        raise BadImage(label, f"refused: more than {IMAGE_MEMBER_BYTES_MAX // MiB} MiB")
    return data
