"""toy-styles: determinism, shared layouts, manifest, and 'styles are not just palettes'."""

import csv
import time

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import uniform_filter

from stylekit.data.manifest import read_manifest
from stylekit.data.toy import (
    CONTENT,
    STYLES,
    TOY_STYLES,
    generate_toy_styles,
    layout_mask,
    make_layout,
    render_layout,
)
from stylekit.errors import BadInput


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_writes_layout_files_and_manifest(tmp_path):
    report = generate_toy_styles(tmp_path / "toy", size=32, per_style=5, styles=8, seed=0)
    root = tmp_path / "toy"
    assert report.styles == TOY_STYLES[:8] and report.layouts == 5 and report.files == 9 * 5
    for label in [*TOY_STYLES[:8], CONTENT]:
        names = sorted(p.name for p in (root / label).iterdir())
        assert names == [f"{i:05d}.png" for i in range(5)]
        with Image.open(root / label / "00003.png") as img:
            assert img.size == (32, 32) and img.mode == "RGB"
    with open(root / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["path", "label", "layout"]
    assert len(rows) == 45 and {r["label"] for r in rows} == {*TOY_STYLES[:8], CONTENT}
    assert all((root / r["path"]).is_file() and r["path"].endswith(f"{int(r['layout']):05d}.png") for r in rows)
    assert len(read_manifest(root)) == 45  # prepared-folder reader accepts it (split defaults to train)
    assert report.to_dict()["files"] == 45


def test_byte_identical_for_same_seed_and_any_workers(tmp_path):
    generate_toy_styles(tmp_path / "a", size=24, per_style=6, styles=4, seed=3)
    generate_toy_styles(tmp_path / "b", size=24, per_style=6, styles=4, seed=3, workers=2)
    generate_toy_styles(tmp_path / "c", size=24, per_style=6, styles=4, seed=4)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys() and a != c
    generate_toy_styles(tmp_path / "a", size=24, per_style=6, styles=4, seed=3)  # idempotent overwrite
    assert _files(tmp_path / "a") == a


def test_layouts_have_2_to_5_shapes_of_every_kind():
    layouts = [make_layout(i, 0) for i in range(60)]
    assert all(2 <= len(lay.shapes) <= 5 for lay in layouts)
    assert {s.kind for lay in layouts for s in lay.shapes} == {"circle", "box", "triangle", "band"}
    assert make_layout(7, 0) == make_layout(7, 0) and make_layout(7, 0) != make_layout(7, 1)


def _explained(img, mask):
    """Fraction of (texture-smoothed) pixel variance explained by per-region mean colours."""
    x = uniform_filter(img.astype(np.float64), size=(5, 5, 1)).reshape(-1, 3)
    ids = mask.ravel()
    means = np.stack([x[ids == k].mean(0) if (ids == k).any() else np.zeros(3) for k in range(ids.max() + 1)])
    return 1 - ((x - means[ids]) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()


def test_same_layout_shares_mask_across_styles():
    size = 48
    for layout_id in range(4):
        layout = make_layout(layout_id, 0)
        mask = layout_mask(layout, size)
        content = render_layout(layout, CONTENT, size)
        # The content image is exactly the mask: one grey level per visible region.
        levels = {tuple(v) for v in content.reshape(-1, 3)}
        assert len(levels) == len(np.unique(mask))
        for k in np.unique(mask):
            assert len({tuple(v) for v in content[mask == k]}) == 1
        others = [layout_mask(make_layout(layout_id + 50 + k, 0), size) for k in range(3)]
        for style in TOY_STYLES:
            img = render_layout(layout, style, size)
            assert img.shape == (size, size, 3) and img.dtype == np.uint8
            # Every style follows this layout's regions far better than another layout's.
            assert _explained(img, mask) > max(_explained(img, o) for o in others) + 0.1, (style, layout_id)


def _hist(img, bins=4):
    q = (img // (256 // bins)).reshape(-1, 3).astype(np.int64)
    return np.bincount(q[:, 0] * bins * bins + q[:, 1] * bins + q[:, 2], minlength=bins**3) / len(q)


def _spectrum(img):
    """Texture feature: log FFT power of the grey image in 7 radial x 8 orientation bins."""
    g = img.mean(-1)
    f = np.abs(np.fft.fftshift(np.fft.fft2(g - g.mean())))
    n = g.shape[0]
    yy, xx = np.mgrid[:n, :n] - n // 2
    rb = np.minimum((np.hypot(yy, xx) / (n / 2) * 6).astype(int), 6)
    ab = (np.mod(np.arctan2(yy, xx), np.pi) / np.pi * 8).astype(int) % 8
    out = np.zeros((7, 8))
    np.add.at(out, (rb, ab), f)
    return np.log1p(out.ravel())


def _nearest_centroid(features):
    """features [classes, n, d]: fit on the first half of each class, accuracy on the second half."""
    n = features.shape[1] // 2
    train, test = features[:, :n], features[:, n:]
    mu = train.mean(1)
    sd = train.reshape(-1, features.shape[-1]).std(0) + 1e-6
    d = (((test[:, :, None, :] - mu[None, None]) / sd) ** 2).sum(-1)
    return float((d.argmin(-1) == np.arange(len(features))[:, None]).mean())


@pytest.fixture(scope="module")
def renders():
    names = TOY_STYLES[:8]
    return names, np.stack([[render_layout(i, s, 32, 0) for i in range(60)] for s in names])


def test_colour_histogram_classifier_does_not_reach_100_percent(renders):
    names, imgs = renders
    assert STYLES["stripes"].palette == STYLES["checks"].palette  # a shared palette ...
    assert STYLES["stripes"].edge == STYLES["checks"].edge  # ... and edges: only texture differs
    hist = np.array([[_hist(x) for x in row] for row in imgs])
    assert _nearest_centroid(hist) < 1.0
    pair = [names.index("stripes"), names.index("checks")]
    assert _nearest_centroid(hist[pair]) < 0.95


def test_styles_are_learnable_from_texture(renders):
    names, imgs = renders
    spec = np.array([[_spectrum(x) for x in row] for row in imgs])
    pair = [names.index("stripes"), names.index("checks")]
    assert _nearest_centroid(spec[pair]) >= 0.95  # colour can't separate them, texture can
    both = np.concatenate([spec, np.array([[_hist(x) for x in row] for row in imgs])], axis=-1)
    assert _nearest_centroid(both) >= 0.95


def test_bad_arguments(tmp_path):
    from stylekit.configs.download import DownloadConfig

    with pytest.raises(BadInput, match="--styles"):
        DownloadConfig(name="toy-styles", out=tmp_path, styles=len(TOY_STYLES) + 1)
    with pytest.raises(BadInput, match="--styles"):
        DownloadConfig(name="toy-styles", out=tmp_path, styles=0)
    with pytest.raises(BadInput, match="--size"):
        DownloadConfig(name="toy-styles", out=tmp_path, size=8)
    with pytest.raises(BadInput, match="unknown toy style"):
        render_layout(0, "cubism", 32)


@pytest.mark.slow
def test_default_set_is_fast(tmp_path):
    start = time.perf_counter()
    report = generate_toy_styles(tmp_path / "toy", size=64, per_style=200, styles=8, seed=0)
    assert report.files == 1800
    assert time.perf_counter() - start < 60
