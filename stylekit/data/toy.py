"""toy-styles: the built-in stand-in for WikiArt (the same composition rendered in different styles).

A *layout* is a seeded random composition of 2-5 shapes (circles, boxes, triangles, bands) on a
background. A *style* is a deterministic renderer: a palette, a texture and an edge treatment.
Every style renders the same layouts, so `DIR/<style>/00007.png` and `DIR/content/00007.png` share
one shape mask: exactly the structure the pix2pix and style-similarity projects need.

Styles are not just palettes: `stripes` and `checks` share palette and edges and differ only in
texture, so a colour histogram cannot separate them while a small CNN can (textures differ in
frequency and orientation). Geometry is defined in normalised coordinates, so a 256px set is a
sharper version of the 64px one. Output is byte-identical for the same seed.
"""

from __future__ import annotations

import csv
import functools
import io
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from stylekit.errors import BadInput
from stylekit.io.atomic import write_text_atomic
from stylekit.io.console import get_console
from stylekit.io.rundir import ensure_writable_dir

CONTENT = "content"


def is_toy_root(path: str | os.PathLike[str]) -> bool:
    """A toy-styles folder: `content/` (the unstyled structure images) beside at least one style folder."""
    root = Path(path)
    if not (root / CONTENT).is_dir():
        return False
    return any(d.is_dir() and d.name != CONTENT and not d.name.startswith(".") for d in root.iterdir())
PNG_PARAMS: dict[str, Any] = {"format": "PNG", "compress_level": 6, "optimize": False}

# Stream ids for np.random.default_rng([seed, layout, STREAM, ...]): independent, stable draws.
_GEOMETRY, _COLOURS, _NOISE = 0, 1, 2

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class Palette:
    backgrounds: tuple[Colour, ...]
    fills: tuple[Colour, ...]
    ink: Colour  # outline / texture ink


PALETTES: dict[str, Palette] = {
    "pop": Palette(((255, 255, 255), (255, 236, 0), (0, 200, 255)),
                   ((230, 20, 30), (20, 60, 230), (255, 210, 0), (240, 0, 170), (0, 190, 90), (255, 120, 0)), (10, 10, 10)),
    "ink": Palette(((236, 228, 208), (210, 222, 214), (226, 206, 196)),
                   ((28, 94, 110), (200, 90, 50), (40, 52, 90), (150, 160, 80), (120, 60, 90), (90, 140, 170)), (20, 24, 30)),
    "pastel": Palette(((250, 244, 236), (232, 244, 250), (244, 236, 250)),
                      ((246, 170, 180), (170, 210, 240), (190, 230, 180), (250, 220, 150), (210, 180, 240), (150, 220, 215)), (90, 90, 120)),
    "sepia": Palette(((244, 232, 204), (236, 220, 190)),
                     ((160, 110, 60), (120, 80, 45), (200, 160, 110), (90, 60, 40), (180, 130, 80)), (50, 32, 20)),
    "earth": Palette(((200, 190, 160), (170, 180, 150), (190, 170, 150)),
                     ((110, 90, 60), (70, 100, 60), (150, 120, 80), (100, 70, 50), (130, 140, 100), (80, 80, 70)), (40, 35, 30)),
    "jewel": Palette(((30, 30, 40), (40, 30, 50)),
                     ((0, 120, 110), (150, 20, 60), (30, 60, 160), (200, 150, 20), (100, 40, 140), (20, 140, 60)), (70, 70, 70)),
    "sunset": Palette(((255, 200, 150), (250, 170, 170), (255, 225, 180)),
                      ((240, 110, 80), (180, 60, 110), (250, 160, 60), (120, 50, 120), (230, 80, 120)), (90, 30, 60)),
    "neon": Palette(((8, 8, 20), (20, 0, 30)),
                    ((255, 40, 200), (0, 255, 240), (200, 255, 0), (255, 140, 0), (120, 80, 255)), (255, 255, 255)),
    "blueprint": Palette(((20, 60, 140), (16, 50, 120)),
                         ((40, 90, 170), (30, 75, 155), (60, 110, 185), (50, 80, 150)), (235, 240, 255)),
}


@dataclass(frozen=True)
class ToyStyle:
    """A renderer: palette + texture (period/angle in image fractions/degrees) + edge treatment."""

    name: str
    palette: str
    texture: str  # flat | stripes | checks | dots | hatching | grain | mosaic | gradient | grid
    edge: str  # hard | outline | soft
    period: float = 0.1
    angle: float = 0.0
    outline: float = 0.0  # outline half-width (image fraction) for edge == "outline"


# Order is part of the interface: `styles=N` picks the first N, and names never change.
_STYLES = (
    ToyStyle("pop", "pop", "flat", "outline", outline=0.022),
    ToyStyle("stripes", "ink", "stripes", "hard", period=0.125, angle=45.0),
    ToyStyle("checks", "ink", "checks", "hard", period=0.25, angle=45.0),
    ToyStyle("dots", "pastel", "dots", "hard", period=0.1, angle=15.0),
    ToyStyle("hatching", "sepia", "hatching", "outline", period=0.07, angle=30.0, outline=0.01),
    ToyStyle("grain", "earth", "grain", "soft"),
    ToyStyle("mosaic", "jewel", "mosaic", "hard", period=0.0625),
    ToyStyle("gradient", "sunset", "gradient", "soft", angle=70.0),
    ToyStyle("neon", "neon", "flat", "outline", outline=0.014),
    ToyStyle("blueprint", "blueprint", "grid", "outline", period=0.1, outline=0.01),
)
STYLES: dict[str, ToyStyle] = {s.name: s for s in _STYLES}
TOY_STYLES: list[str] = [s.name for s in _STYLES]


# ---------------------------------------------------------------------------------------- layouts
@dataclass(frozen=True)
class Shape:
    kind: str  # circle | box | triangle | band
    params: tuple[float, ...]


@dataclass(frozen=True)
class Layout:
    layout_id: int
    shapes: tuple[Shape, ...]


def make_layout(layout_id: int, seed: int = 0) -> Layout:
    """The seeded composition for `layout_id`: 2-5 shapes, bands first (they span the canvas)."""
    rng = np.random.default_rng([seed, layout_id, _GEOMETRY])
    shapes: list[Shape] = []
    for _ in range(int(rng.integers(2, 6))):
        kind = ("circle", "box", "triangle", "band")[int(rng.integers(0, 4))]
        if kind == "circle":
            params = (rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.12, 0.3))
        elif kind == "box":
            params = (rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.28),
                      rng.uniform(0.1, 0.28), rng.uniform(-0.6, 0.6))
        elif kind == "triangle":
            cx, cy, radius, rot = rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.75), rng.uniform(0.18, 0.35), rng.uniform(0, 2 * np.pi)
            angles = rot + 2 * np.pi * np.arange(3) / 3 + rng.uniform(-0.4, 0.4, 3)
            params = tuple(float(v) for a in angles for v in (cx + radius * np.cos(a), cy + radius * np.sin(a)))
        else:
            params = (rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0, np.pi), rng.uniform(0.04, 0.1))
        shapes.append(Shape(kind, tuple(float(p) for p in params)))
    shapes.sort(key=lambda s: s.kind != "band")  # stable: bands under everything else
    return Layout(layout_id, tuple(shapes))


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates x, y in (0, 1), y pointing down (float32: half the memory traffic)."""
    coords = ((np.arange(size, dtype=np.float64) + 0.5) / size).astype(np.float32)
    x, y = np.meshgrid(coords, coords)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def _sdf(shape: Shape, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Signed distance (image fractions, negative inside); exact for circle/box/band, edge-exact for triangle."""
    p = shape.params
    if shape.kind == "circle":
        return np.hypot(x - p[0], y - p[1]) - p[2]
    if shape.kind == "box":
        c, s = float(np.cos(p[4])), float(np.sin(p[4]))
        u, v = (x - p[0]) * c + (y - p[1]) * s, -(x - p[0]) * s + (y - p[1]) * c
        qx, qy = np.abs(u) - p[2], np.abs(v) - p[3]
        return np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0)
    if shape.kind == "triangle":
        v = np.array(p).reshape(3, 2)
        area = sum(v[i, 0] * v[(i + 1) % 3, 1] - v[(i + 1) % 3, 0] * v[i, 1] for i in range(3))
        if area < 0:
            v = v[::-1]
        d = np.full(x.shape, -np.inf, dtype=np.float32)
        for i in range(3):
            a, b = v[i], v[(i + 1) % 3]
            e = b - a
            n0, n1, a0, a1 = float(e[1] / np.hypot(*e)), float(-e[0] / np.hypot(*e)), float(a[0]), float(a[1])
            d = np.maximum(d, (x - a0) * n0 + (y - a1) * n1)
        return d
    c, s = float(np.cos(p[2])), float(np.sin(p[2]))
    return np.abs(-(x - p[0]) * s + (y - p[1]) * c) - p[3]


def layout_fields(layout: Layout, size: int) -> list[np.ndarray]:
    """One signed-distance field per shape, in drawing order."""
    x, y = _grid(size)
    return [_sdf(s, x, y) for s in layout.shapes]


def layout_mask(layout: Layout, size: int) -> np.ndarray:
    """Region ids [size, size] uint8: 0 = background, i = shape i (1-based, later shapes on top)."""
    mask = np.zeros((size, size), dtype=np.uint8)
    for i, d in enumerate(layout_fields(layout, size), start=1):
        mask[d < 0] = i
    return mask


# ---------------------------------------------------------------------------------------- styles
def _square_wave(u: np.ndarray, period_px: float, duty: float = 0.5) -> np.ndarray:
    """Anti-aliased square wave of u (in periods): 1 on a `duty` fraction of each period."""
    tri = np.abs(2.0 * (u - np.floor(u)) - 1.0)  # 1 at the middle of a period, 0 at its ends
    return np.clip((tri - (1.0 - duty)) * period_px / 2.0 + 0.5, 0.0, 1.0)


def _rotated(x: np.ndarray, y: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    a = float(np.deg2rad(degrees))
    c, s = float(np.cos(a)), float(np.sin(a))
    return x * c + y * s, -x * s + y * c


def _texture(style: ToyStyle, img: np.ndarray, ink: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    x, y = _grid(size)
    period_px = style.period * size
    if style.texture == "stripes":
        u, _ = _rotated(x, y, style.angle)
        return img * (1.0 - 0.45 * _square_wave(u / style.period, period_px))[..., None]
    if style.texture == "checks":
        u, v = _rotated(x, y, style.angle)
        a, b = _square_wave(u / style.period, period_px), _square_wave(v / style.period, period_px)
        t = a + b - 2 * a * b  # anti-aliased xor: same 50% ink as stripes
        return img * (1.0 - 0.45 * t)[..., None]
    if style.texture == "dots":
        u, v = _rotated(x, y, style.angle)
        fu, fv = u / style.period - np.floor(u / style.period) - 0.5, v / style.period - np.floor(v / style.period) - 0.5
        t = np.clip((0.32 - np.hypot(fu, fv)) * period_px + 0.5, 0.0, 1.0)
        return img * (1 - 0.55 * t[..., None])
    if style.texture == "hatching":
        u, _ = _rotated(x, y, style.angle)
        v, _ = _rotated(x, y, -style.angle)
        t = np.maximum(_square_wave(u / style.period, period_px, 0.3), _square_wave(v / style.period, period_px, 0.3))
        return img * (1 - 0.5 * t[..., None]) + ink * (0.5 * 0.3 * t[..., None])
    if style.texture == "grain":
        return img + 34.0 * rng.standard_normal((size, size), dtype=np.float32)[..., None]
    if style.texture == "mosaic":
        tiles = int(np.ceil(1.0 / style.period)) + 1
        jitter = rng.uniform(-40.0, 40.0, (tiles, tiles, 1)).astype(np.float32)
        ix, iy = np.floor(x / style.period).astype(int), np.floor(y / style.period).astype(int)
        grout = np.maximum(_square_wave(x / style.period + 0.5, period_px, 0.18), _square_wave(y / style.period + 0.5, period_px, 0.18))
        tiled = img + jitter[iy, ix]
        return tiled * (1 - grout[..., None]) + ink * grout[..., None]
    if style.texture == "gradient":
        u, _ = _rotated(x - 0.5, y - 0.5, style.angle)
        t = np.clip(u + 0.5, 0.0, 1.0)[..., None]
        return img * (1.0 - 0.55 * t) + 255.0 * (0.55 * t) * 0.9
    if style.texture == "grid":
        t = np.maximum(_square_wave(x / style.period, period_px, 0.1), _square_wave(y / style.period, period_px, 0.1))
        return img * (1 - 0.35 * t[..., None]) + ink * (0.35 * t[..., None])
    return img


def _coverage(d: np.ndarray, size: int, edge: str) -> np.ndarray:
    if edge == "soft":  # a ~4px-wide (at 64px) smooth ramp
        t = np.clip(0.5 - d / 0.06, 0.0, 1.0)
        return t * t * (3 - 2 * t)
    return np.clip(0.5 - d * size, 0.0, 1.0)  # one-pixel anti-aliasing


def _colours(layout: Layout, palette_name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Background and per-shape fills. Depends on the palette, not the style: styles sharing a
    palette colour a layout identically and differ only in texture."""
    palette = PALETTES[palette_name]
    rng = np.random.default_rng([seed, layout.layout_id, _COLOURS, sorted(PALETTES).index(palette_name)])
    bg = np.array(palette.backgrounds[int(rng.integers(0, len(palette.backgrounds)))], dtype=np.float64)
    n = len(layout.shapes)
    picks = rng.choice(len(palette.fills), size=n, replace=n > len(palette.fills))
    return bg, np.array([palette.fills[i] for i in picks], dtype=np.float32)


def _content_levels(n: int) -> np.ndarray:
    return np.linspace(200, 40, 5)[:n]


def render_layout(layout: Layout | int, style: str, size: int, seed: int = 0,
                  fields: list[np.ndarray] | None = None) -> np.ndarray:
    """Render one layout in `style` (a TOY_STYLES name or 'content') as uint8 [size, size, 3].

    `fields` (from `layout_fields(layout, size)`) may be passed to share them across styles."""
    if isinstance(layout, int):
        layout = make_layout(layout, seed)
    if fields is None:
        fields = layout_fields(layout, size)
    if style == CONTENT:  # neutral structure image: flat grey per shape on white, exact mask edges
        out = np.full((size, size), 255, dtype=np.uint8)
        for level, d in zip(_content_levels(len(fields)), fields, strict=True):
            out[d < 0] = int(level)
        return np.repeat(out[..., None], 3, axis=2)
    if style not in STYLES:
        raise BadInput(f"unknown toy style '{style}'", hint=f"choose from {', '.join(TOY_STYLES)} or {CONTENT}")
    spec = STYLES[style]
    palette = PALETTES[spec.palette]
    bg, fills = _colours(layout, spec.palette, seed)
    ink = np.array(palette.ink, dtype=np.float32)
    img = np.broadcast_to(bg.astype(np.float32), (size, size, 3)).copy()
    for d, fill in zip(fields, fills, strict=True):
        a = _coverage(d, size, spec.edge)[..., None]
        img = img * (1 - a) + fill * a
        if spec.edge == "outline":
            o = np.clip(0.5 - (np.abs(d) - spec.outline) * size, 0.0, 1.0)[..., None]
            img = img * (1 - o) + ink * o
    rng = np.random.default_rng([seed, layout.layout_id, _NOISE, TOY_STYLES.index(style)])
    img = _texture(spec, img, ink, size, rng)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def png_bytes(arr: np.ndarray) -> bytes:
    """PNG with fixed parameters and no metadata: same pixels, same bytes."""
    buf = io.BytesIO()
    Image.fromarray(arr, mode="RGB").save(buf, **PNG_PARAMS)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------- writing
@dataclass
class ToyReport:
    out: Path
    styles: list[str]
    layouts: int
    files: int
    seconds: float
    size: int = 64
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "styles": list(self.styles), "layouts": self.layouts, "files": self.files,
                "seconds": round(self.seconds, 3), "size": self.size, "seed": self.seed,
                "images_per_s": round(self.files / self.seconds, 1) if self.seconds > 0 else None}


def layout_name(layout_id: int) -> str:
    return f"{layout_id:05d}"


def _write_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _render_chunk(out: str, labels: list[str], layout_ids: list[int], size: int, seed: int) -> int:
    for layout_id in layout_ids:
        layout = make_layout(layout_id, seed)
        fields = layout_fields(layout, size)
        for label in labels:
            img = render_layout(layout, label, size, seed, fields)
            _write_file(Path(out) / label / f"{layout_name(layout_id)}.png", png_bytes(img))
    return len(layout_ids)


def generate_toy_styles(out: Path, size: int = 64, per_style: int = 200, styles: int = 8, seed: int = 0,
                        workers: int = 1) -> ToyReport:
    """Write DIR/<style>/<layout>.png for the first `styles` styles, DIR/content/<layout>.png and
    DIR/manifest.csv (path,label,layout). Overwrites; the manifest is written last. The arguments are
    trusted: `stylekit download toy-styles` bounds them (stylekit/configs/download.py)."""

    start = time.perf_counter()
    out = ensure_writable_dir(Path(out))
    names = TOY_STYLES[:styles]
    labels = [*names, CONTENT]
    for label in labels:
        (out / label).mkdir(exist_ok=True)
    ids = list(range(per_style))
    chunk = max(1, min(25, per_style // max(1, workers * 4)))
    chunks = [ids[i : i + chunk] for i in range(0, per_style, chunk)]
    with get_console().progress(per_style, f"rendering toy-styles ({len(labels)} x {per_style} at {size}px)") as task:
        if workers > 1:
            from stylekit.data.prepare import pool_context

            with ProcessPoolExecutor(max_workers=workers, mp_context=pool_context()) as pool:
                futures = [pool.submit(_render_chunk, str(out), labels, c, size, seed) for c in chunks]
                for f in futures:
                    task.advance(f.result())
        else:
            for c in chunks:
                task.advance(_render_chunk(str(out), labels, c, size, seed))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "label", "layout"])
    for label in labels:
        for i in ids:
            writer.writerow([f"{label}/{layout_name(i)}.png", label, i])
    write_text_atomic(out / "manifest.csv", buf.getvalue())
    return ToyReport(out, names, per_style, len(labels) * per_style, time.perf_counter() - start, size, seed)
