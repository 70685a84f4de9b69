"""Bounds on everything stylekit reads from a file it did not write: one place for every size rule.

A small hostile (or damaged) file must never make stylekit allocate large memory, recurse without end
or run for ever. Loaders check what a file *declares* (network widths, embedding sizes, tensor
shapes, member sizes, nesting) against these bounds and against the bytes the file actually holds,
before anything is allocated. docs/security.md lists every bound and the loader that applies it.
"""

from __future__ import annotations

import json
import math
import tomllib
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
NET_BUILD_FACTOR = 3  # building a network may allocate 3x the bytes of the weights its file holds
NET_BUILD_SLACK = 64 * MiB  # + 64 MiB (constant filters, norm statistics, small buffers)
EMBED_DIM_MAX = 65_536  # style-model projection_dim / embed_dim
PRETRAINED_ALLOWANCE = 640 * MiB  # a frozen pretrained part a network loads itself (VGG19: a 548 MB file)
# pix2pix generator.json (train-pix2pix writes ngf 64, size 256-1024, refs 0-8).
GENERATOR_JSON_BOUNDS: dict[str, tuple[int, int]] = {
    "size": (1, NET_RESOLUTION_MAX), "ngf": (1, 1024), "refs": (0, 64), "style_dim": (1, EMBED_DIM_MAX), "ref_size": (1, NET_RESOLUTION_MAX),
}

# Pickles (NVlabs network snapshots) and structured files (JSON, TOML, pickled containers).
PICKLE_OPS_MAX = 2_000_000  # opcodes in one pickle (a 1024 px NVlabs snapshot with G, D, G_ema has ~20k)
NESTING_MAX = 100  # containers inside containers (real files nest fewer than 20 deep)
NUMPY_ITEMSIZE_MAX = 64  # bytes per element of a pickled numpy dtype (float64: 8, complex256: 32)

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


# A field bound: (lo, hi), or a nested table for a sub-dict. Absent or None fields are left to the
# constructor's defaults; every present value must be an int inside its bound.
Bounds = dict[str, "tuple[int, int] | Bounds"]


def check_fields(config: Any, bounds: Bounds, source: str, prefix: str = "") -> None:
    """Check the integer fields of a (nested) config dict against `bounds` (BadInput names the field)."""
    if not isinstance(config, dict):
        raise BadInput(f"{source}: declares {prefix.rstrip('.') or 'its config'} as {type(config).__name__}, not a table",
                       hint="the file is damaged or not made for stylekit")
    for key, bound in bounds.items():
        value = config.get(key)
        if value is None:
            continue
        if isinstance(bound, dict):
            check_fields(value, bound, source, f"{prefix}{key}.")
        else:
            check_int(value, f"{prefix}{key}", bound[0], bound[1], source)


def build_checked(factory: Any, present: dict[str, tuple[int, ...]], source: str, declared: str,
                  optional: Any = lambda key: False, allowance: int = 0) -> Any:
    """Build `factory()` within an allocation budget set by the tensors the file holds, then check it fits.

    `present` holds the names and shapes of the file's tensors (backed by bytes it holds). While the
    network is built, every tensor it creates is counted and a request that would pass
    NET_BUILD_FACTOR x those bytes (+ NET_BUILD_SLACK) is refused before it is allocated; a config
    that declares more than its file holds cannot allocate much. Afterwards the network must have
    exactly the names and shapes in `present`, except names `optional(name)` allows to be absent.
    `allowance` adds bytes for frozen pretrained parts the network loads itself (PRETRAINED_ALLOWANCE).
    """
    held = sum(math.prod(shape) * 4 for shape in present.values())  # as float32, the dtype networks are built in
    try:
        with _AllocationBudget(NET_BUILD_FACTOR * held + NET_BUILD_SLACK + allowance, held, source, declared):
            net = factory()
    except (TypeError, ValueError, ZeroDivisionError, RuntimeError, KeyError) as exc:
        raise BadInput(f"{source}: {declared} does not describe a network stylekit can build: {exc}",
                       hint="the file is damaged or not made for stylekit") from None
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    missing = sorted(k for k in set(shapes) - set(present) if not optional(k))
    unexpected = sorted(set(present) - set(shapes))
    wrong = sorted(k for k in set(shapes) & set(present) if shapes[k] != tuple(present[k]))
    if missing or unexpected or wrong:
        parts = [f"{label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
        parts += [f"{k} declared {list(shapes[k])}, file holds {list(present[k])}" for k in wrong[:3]]
        raise BadInput(f"{source}: {declared} does not fit the weights in the file ({'; '.join(parts)})",
                       hint="keep a network's config and weights from the same file/run together")
    return net


class _AllocationBudget:
    """While active, counts the bytes of every new tensor storage and refuses, before allocating, a
    tensor-creating call that would go over `budget`.

    Built on torch's function-mode hook (the one `with torch.device(...)` uses); the shape of a
    request is worked out on the meta device, which allocates nothing. Hand-written because torch
    has no allocation cap for CPU memory.
    """

    def __init__(self, budget: int, held: int, source: str, declared: str) -> None:
        import torch
        from torch.overrides import TorchFunctionMode
        from torch.utils._device import _device_constructors  # the factory functions torch.device() routes

        budget_ref = self

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
                kwargs = kwargs or {}
                if func in constructors:
                    probe_kwargs = {k: v for k, v in kwargs.items() if k not in ("device", "generator", "pin_memory", "out")}
                    probe = shaper.get(func, func)(*args, **probe_kwargs, device="meta")
                    budget_ref.spend(probe.numel() * probe.element_size())
                    out = func(*args, **kwargs)
                    budget_ref.seen.add(_storage_key(out))
                    return out
                out = func(*args, **kwargs)
                if isinstance(out, torch.Tensor) and _storage_key(out) not in budget_ref.seen:
                    budget_ref.seen.add(_storage_key(out))
                    budget_ref.spend(out.untyped_storage().nbytes())
                return out

        constructors = _device_constructors()
        shaper = {torch.randn: torch.empty, torch.rand: torch.empty}  # same signature, no RNG on meta
        self.left = budget
        self.budget = budget
        self.held = held
        self.source = source
        self.declared = declared
        self.seen: set[int] = set()
        self.mode = Mode()

    def spend(self, nbytes: int) -> None:
        self.left -= nbytes
        if self.left < 0:
            raise BadInput(
                f"{self.source}: {self.declared} declares a network larger than the weights the file holds: building it "
                f"passed {self.budget:,} bytes, the bound for {self.held:,} bytes of weights",
                hint="the file is damaged or hostile; stylekit refuses it before allocating (see docs/security.md)",
            )

    def __enter__(self) -> _AllocationBudget:
        self.mode.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.mode.__exit__(*exc)


def _storage_key(t: Any) -> int:
    return t.untyped_storage().data_ptr() if hasattr(t, "untyped_storage") else id(t)


def _view_key(t: Any) -> tuple[Any, ...]:
    return (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)


def check_tensor_bytes(tensors: Any, source: str) -> None:
    """Tensors may not hold more bytes than the distinct storages behind them (views shared by many
    names, or zero strides, would otherwise multiply a small file when each is copied into its own
    parameter). The same view under two names (G and G_ema saved as one object) counts once.
    Call it before any copy or dtype conversion: it reads only shapes and strides."""
    views = {_view_key(t): t for t in tensors}
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in views.values()}
    held = sum(storages.values())
    used = sum(t.numel() * t.element_size() for t in views.values())
    if used > held:
        raise BadInput(f"{source}: its tensors declare {used} bytes but share storages holding {held}",
                       hint="the file is damaged or hostile (see docs/security.md)")


def parse_json(text: str | bytes, source: str) -> Any:
    """json.loads for a file stylekit did not write: damage, or nesting past NESTING_MAX, is BadInput."""

    try:
        value = json.loads(text)
    except RecursionError:
        raise BadInput(f"{source}: nests containers more than {NESTING_MAX} deep", hint="the file is damaged or hostile") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{source} is not valid JSON: {exc}", hint="the file is damaged; re-create it") from None
    check_nesting(value, source)
    return value


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """tomllib.loads with the same rules as parse_json (tomllib recurses once per nesting level)."""

    try:
        value = tomllib.loads(text)
    except RecursionError:
        raise BadInput(f"{source}: nests containers more than {NESTING_MAX} deep", hint="the file is damaged or hostile") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{source} is not valid TOML: {exc}", hint="fix the file") from None
    check_nesting(value, source)
    return value
