"""Image discovery and safe decoding (stylekit/data/images.py): modes, EXIF, bad files, discovery rules."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from stylekit.data import images
from stylekit.data.images import ImageReport, list_images, load_rgb, load_tensor, scan_images
from stylekit.errors import BadImage, BadInput


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _px(path, xy=(0, 0)):
    img = load_rgb(path)
    assert img.mode == "RGB"
    return img.getpixel(xy)


# ------------------------------------------------------------------------------------------- modes
def test_mode_L(tmp_path):
    Image.new("L", (4, 4), 100).save(tmp_path / "l.png")
    assert _px(tmp_path / "l.png") == (100, 100, 100)


def test_mode_LA_alpha_on_white(tmp_path):
    img = Image.new("LA", (2, 1))
    img.putpixel((0, 0), (0, 0))  # fully transparent black -> white
    img.putpixel((1, 0), (50, 255))  # opaque grey stays
    img.save(tmp_path / "la.png")
    assert _px(tmp_path / "la.png", (0, 0)) == (255, 255, 255)
    assert _px(tmp_path / "la.png", (1, 0)) == (50, 50, 50)


def test_mode_I16_scaled_to_8_bit(tmp_path):
    arr = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "i16.png")
    with Image.open(tmp_path / "i16.png") as raw:
        assert raw.mode.startswith("I")
    got = [_px(tmp_path / "i16.png", (x, 0))[0] for x in range(3)]
    assert got == [0, 128, 255]


def test_mode_1(tmp_path):
    img = Image.new("1", (2, 1), 0)
    img.putpixel((1, 0), 1)
    img.save(tmp_path / "b.png")
    assert _px(tmp_path / "b.png", (0, 0)) == (0, 0, 0)
    assert _px(tmp_path / "b.png", (1, 0)) == (255, 255, 255)


@pytest.mark.parametrize("ext", ["png", "gif"])
def test_mode_P_with_transparency(tmp_path, ext):
    img = Image.new("P", (2, 1), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.putpixel((1, 0), 1)
    img.info["transparency"] = 0
    img.save(tmp_path / f"p.{ext}", transparency=0)
    assert _px(tmp_path / f"p.{ext}", (0, 0)) == (255, 255, 255)  # transparent index -> white
    assert _px(tmp_path / f"p.{ext}", (1, 0)) == (255, 0, 0)


def test_mode_RGB_with_trns_colour(tmp_path):
    img = Image.new("RGB", (2, 1), (10, 20, 30))
    img.putpixel((1, 0), (200, 0, 0))
    img.save(tmp_path / "t.png", transparency=(10, 20, 30))
    assert _px(tmp_path / "t.png", (0, 0)) == (255, 255, 255)
    assert _px(tmp_path / "t.png", (1, 0)) == (200, 0, 0)


def test_mode_RGBA_alpha_on_white(tmp_path):
    Image.new("RGBA", (2, 2), (255, 0, 0, 128)).save(tmp_path / "a.png")
    r, g, b = _px(tmp_path / "a.png")
    assert r == 255 and abs(g - 127) <= 1 and abs(b - 127) <= 1


def test_mode_CMYK(tmp_path):
    Image.new("CMYK", (2, 2), (0, 255, 255, 0)).save(tmp_path / "c.tif")
    assert _px(tmp_path / "c.tif") == (255, 0, 0)
    Image.new("CMYK", (8, 8), (0, 0, 0, 0)).save(tmp_path / "c.jpg", quality=95)
    assert all(v >= 250 for v in _px(tmp_path / "c.jpg"))


def test_exif_orientation_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "o.jpg", exif=exif, quality=95)
    out = load_rgb(tmp_path / "o.jpg")
    assert out.size == (20, 40)
    top, bottom = out.getpixel((10, 5)), out.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60  # the red half is now on top
    assert bottom[2] > 200 and bottom[0] < 60


def test_load_tensor_resizes_and_crops(tmp_path):
    Image.new("RGB", (30, 20), (255, 0, 0)).save(tmp_path / "r.png")
    t = load_tensor(tmp_path / "r.png", size=8)
    assert tuple(t.shape) == (3, 8, 8)
    assert float(t[0].min()) > 0.99 and float(t[1].max()) < 0.01


# ------------------------------------------------------------------------------------------- bad files
def test_mislabeled_png_named_jpg_loads(tmp_path):
    (tmp_path / "x.jpg").write_bytes(_png(Image.new("RGB", (3, 3), (1, 2, 3))))
    assert _px(tmp_path / "x.jpg") == (1, 2, 3)


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.png", b"", "empty file"),
        ("text.png", b"hello, I am not an image\n" * 4, "not an image"),
        ("trunc.png", None, "cannot decode"),
    ],
)
def test_bad_files_raise_badimage_with_reason(tmp_path, name, data, reason):
    if data is None:
        full = _png(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)))
        data = full[: len(full) // 2]
    (tmp_path / name).write_bytes(data)
    with pytest.raises(BadImage) as exc:
        load_rgb(tmp_path / name)
    assert reason in exc.value.reason
    assert exc.value.path == str(tmp_path / name)
    assert isinstance(exc.value, BadInput) and exc.value.exit_code == 2


def test_missing_file_reason(tmp_path):
    with pytest.raises(BadImage, match="file not found"):
        load_rgb(tmp_path / "nope.png")


def test_decompression_bomb_refused(tmp_path, monkeypatch):
    Image.new("RGB", (20, 20)).save(tmp_path / "big.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    with pytest.raises(BadImage, match="decompression bomb"):
        load_rgb(tmp_path / "big.png")
    Image.new("RGB", (10, 10)).save(tmp_path / "ok.png")
    assert load_rgb(tmp_path / "ok.png").size == (10, 10)


def test_scan_images_skips_and_reports(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"")
    (tmp_path / "c.jpg").write_bytes(b"garbage")
    Image.new("RGB", (4, 4)).save(tmp_path / "d.png")
    good, report = scan_images(list_images(tmp_path))
    assert [p.name for p in good] == ["a.png", "d.png"]
    assert report.used == 2
    assert {(os.path.basename(s.path), s.reason) for s in report.skipped} == {
        ("b.png", "empty file"), ("c.jpg", "not an image (unrecognised content)")}
    doc = report.to_dict()
    assert doc["used"] == 2 and len(doc["skipped"]) == 2
    assert ImageReport().merge(report).summary() == "2 images used, 2 skipped"


# ------------------------------------------------------------------------------------------- discovery
def _touch_png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (2, 2)).save(path, format="PNG")


def test_discovery_case_insensitive_sorted_recursive(tmp_path):
    for name in ["b/Z.JPG", "a/y.PnG", "a/x.webp", "c.TIFF", "notes.txt", "a/data.csv"]:
        p = tmp_path / name
        if name.endswith((".txt", ".csv")):
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("x")
        else:
            _touch_png(p)
    found = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert found == ["a/x.webp", "a/y.PnG", "b/Z.JPG", "c.TIFF"]
    assert [p.name for p in list_images(tmp_path, recursive=False)] == ["c.TIFF"]


def test_hidden_files_and_folders_ignored(tmp_path):
    for name in ["ok.png", ".hidden.png", ".git/x.png", "__MACOSX/y.png", "._ok.png", "sub/.z.jpg", "sub/w.jpg"]:
        _touch_png(tmp_path / name)
    (tmp_path / "Thumbs.db").write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == ["ok.png", "sub/w.jpg"]


def test_symlink_loop_is_safe(tmp_path):
    _touch_png(tmp_path / "a" / "img.png")
    os.symlink(tmp_path, tmp_path / "a" / "loop")  # a/loop -> root -> a -> loop ...
    os.symlink(tmp_path / "a", tmp_path / "a" / "self")
    found = list_images(tmp_path)
    assert [p.name for p in found] == ["img.png"]


def test_single_file_and_missing_root(tmp_path):
    _touch_png(tmp_path / "one.png")
    assert list_images(tmp_path / "one.png") == [tmp_path / "one.png"]
    with pytest.raises(BadInput, match="does not exist"):
        list_images(tmp_path / "missing")
