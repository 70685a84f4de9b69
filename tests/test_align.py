"""--align ffhq: RetinaFace layout and decoding, FFHQ alignment geometry, prepare/invert wiring.

No download: the geometry runs on synthetic landmarks, and the detector on hand-set weights whose
heads ignore the image (zero conv weights, chosen biases), so its output is known exactly.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from stylekit.data.align import align_ffhq, ffhq_quad, to_aligned
from stylekit.nets import retinaface as rf

pytestmark = pytest.mark.usefixtures("one_thread")

# An upright face: eye distance 40, eye-to-mouth 40 (then the crop's half side is 2 x eye distance).
UPRIGHT = np.array([[80.0, 100.0], [120.0, 100.0], [100.0, 120.0], [85.0, 140.0], [115.0, 140.0]])
DOT_COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]


def _run(args):
    from stylekit.cli.app import app

    return CliRunner().invoke(app, args)


def _rotate(points: np.ndarray, degrees: float, centre: np.ndarray) -> np.ndarray:
    a = math.radians(degrees)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return (points - centre) @ rot.T + centre


def _dots_image(points: np.ndarray, size=(240, 240)) -> Image.Image:
    img = Image.new("RGB", size, (128, 128, 128))
    draw = ImageDraw.Draw(img)
    for (x, y), colour in zip(points, DOT_COLOURS, strict=True):
        draw.ellipse((x - 5, y - 5, x + 5, y + 5), fill=colour)
    return img


def _dot_centres(img: Image.Image) -> np.ndarray:
    a = np.asarray(img).astype(np.int32)
    centres = []
    for colour in DOT_COLOURS:
        near = np.abs(a - np.array(colour)).sum(-1) < 60
        ys, xs = np.nonzero(near)
        assert len(xs) > 3, f"dot {colour} not found"
        centres.append((xs.mean(), ys.mean()))
    return np.array(centres)


def test_retinaface_has_the_release_layout():
    """Names and shapes of biubug6's mobilenet0.25_Final.pth (checked against that repository's model):
    253 tensors besides BN step counters, 433,296 numbers."""
    sd = {k: v for k, v in rf.RetinaFace().state_dict().items() if not k.endswith("num_batches_tracked")}
    assert len(sd) == 253 and sum(v.numel() for v in sd.values()) == 433_296
    assert sd["body.stage1.0.0.weight"].shape == (8, 3, 3, 3)
    assert sd["body.stage3.1.3.weight"].shape == (256, 256, 1, 1)
    assert sd["ssh1.conv7x7_3.0.weight"].shape == (16, 16, 3, 3)
    assert sd["LandmarkHead.2.conv1x1.weight"].shape == (20, 64, 1, 1)
    assert sd["ClassHead.0.conv1x1.bias"].shape == (4,)
    loc, logits, lms = rf.RetinaFace().eval()(torch.zeros(1, 3, 70, 90))
    n = len(rf.anchors(70, 90, torch.device("cpu")))
    assert n == 2 * (9 * 12 + 5 * 6 + 3 * 3)
    assert loc.shape == (1, n, 4) and logits.shape == (1, n, 2) and lms.shape == (1, n, 10)


def test_anchor_decoding():
    priors = rf.anchors(64, 64, torch.device("cpu"))
    assert priors.shape == (2 * (64 + 16 + 4), 4)
    assert priors[0].tolist() == [4.0, 4.0, 16.0, 16.0] and priors[1].tolist() == [4.0, 4.0, 32.0, 32.0]
    assert priors[-1].tolist() == [48.0, 48.0, 512.0, 512.0]
    boxes, points = rf.decode(torch.zeros(len(priors), 4), torch.zeros(len(priors), 10), priors)
    assert torch.allclose(boxes[0], torch.tensor([-4.0, -4.0, 12.0, 12.0]))
    assert torch.equal(points[:, 2], priors[:, :2])
    # one step of landmark offset moves a point by variance x anchor size; one of log-size doubles with 1/0.2 * ln 2
    loc = torch.zeros(len(priors), 4)
    loc[:, 2:] = math.log(2) / rf.VARIANCES[1]
    lms = torch.zeros(len(priors), 10)
    lms[:, 0] = 1.0
    boxes, points = rf.decode(loc, lms, priors)
    assert torch.allclose(boxes[0, 2:] - boxes[0, :2], torch.tensor([32.0, 32.0]))
    assert torch.allclose(points[0, 0], torch.tensor([4.0 + 0.1 * 16, 4.0]))


def test_ffhq_quad_puts_the_eyes_where_ffhq_has_them():
    quad = ffhq_quad(UPRIGHT)
    side = np.hypot(*(quad[3] - quad[0]))
    assert side == pytest.approx(4 * 40)  # half side = 2 x eye distance
    pts = (to_aligned(UPRIGHT, quad, 1024) + 0.5) / 1024
    assert pts[0] == pytest.approx([0.375, 0.475]) and pts[1] == pytest.approx([0.625, 0.475])
    assert pts[3][1] == pytest.approx(0.725)
    with pytest.raises(ValueError, match="degenerate"):
        ffhq_quad(np.zeros((5, 2)))


@pytest.mark.parametrize("degrees", [0.0, 25.0, -40.0])
def test_align_ffhq_maps_landmarks_to_the_canonical_frame(degrees):
    centre = np.array([120.0, 120.0])
    points = _rotate(UPRIGHT + 20, degrees, centre)
    out = align_ffhq(_dots_image(points), points, 128)
    assert out.size == (128, 128)
    found = _dot_centres(out)
    expected = to_aligned(UPRIGHT, ffhq_quad(UPRIGHT), 128)  # the same for every rotation
    assert np.abs(found - expected).max() < 1.5


def test_align_ffhq_pads_a_face_at_the_image_border():
    points = UPRIGHT - np.array([75.0, 95.0])  # left eye 5 px from the corner: most of the crop is outside
    out = np.asarray(align_ffhq(_dots_image(points, (160, 160)), points, 64)).astype(np.float32)
    assert out.shape == (64, 64, 3)
    corner = out[:6, :6].reshape(-1, 3)
    assert corner.mean() > 60, "padding is reflected and faded to the median, not black"


def _detector_weights(path: Path, face: bool, offsets: np.ndarray) -> Path:
    """Weights whose heads ignore the image: every anchor says `face` (or not), boxes are the anchors,
    and landmarks sit at `offsets` (pixels, for 512-px anchors) from the anchor centre."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = rf.RetinaFace()
    with torch.no_grad():
        for head in (*net.ClassHead, *net.BboxHead, *net.LandmarkHead):
            head.conv1x1.weight.zero_()
            head.conv1x1.bias.zero_()
        for head in net.ClassHead:
            head.conv1x1.bias.copy_(torch.tensor([-8.0, 8.0] * 2) * (1 if face else -1))
        per_anchor = torch.tensor(offsets.reshape(-1) / (rf.VARIANCES[0] * 512), dtype=torch.float32)
        for head in net.LandmarkHead:
            head.conv1x1.bias.copy_(torch.cat([per_anchor, per_anchor]))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


OFFSETS = np.array([[-6.0, -4.0], [6.0, -4.0], [0.0, 2.0], [-4.5, 7.0], [4.5, 7.0]])


def test_detector_finds_the_largest_face_and_its_landmarks(tmp_path):
    weights = _detector_weights(tmp_path / "rf.safetensors", True, OFFSETS)
    detector = rf.load_face_detector(weights)
    img = torch.randint(0, 255, (32, 32, 3), dtype=torch.uint8)
    faces = detector(img)
    # a 32 px image has one stride-32 position: its 512 px anchor is the largest face
    assert faces[0].box == pytest.approx((16 - 256, 16 - 256, 16 + 256, 16 + 256))
    assert np.asarray(faces[0].landmarks) == pytest.approx(OFFSETS + 16, abs=1e-4)
    assert rf.load_face_detector(_detector_weights(tmp_path / "none.safetensors", False, OFFSETS))(img) == []


def test_prepare_align_ffhq_end_to_end(tmp_path):
    from stylekit.data.images import load_rgb

    src = tmp_path / "photos" / "people"
    src.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(src / f"{name}.png")
    weights = _detector_weights(tmp_path / "rf.safetensors", True, OFFSETS)
    out = tmp_path / "aligned"
    res = _run(["prepare", str(tmp_path / "photos"), str(out), "--align", "ffhq", "--size", "32", "--split", "1",
                "--face-detector", str(weights), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["used"] == 2 and doc["skipped"] == []
    expected = align_ffhq(load_rgb(src / "a.png"), OFFSETS + 16, 32)
    assert np.array_equal(np.asarray(load_rgb(out / "people" / "a.png")), np.asarray(expected))
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["align"] == "ffhq" and report["settings"]["face_detector"] == str(weights)

    no_face = _detector_weights(tmp_path / "none.safetensors", False, OFFSETS)
    res = _run(["prepare", str(tmp_path / "photos"), str(tmp_path / "o2"), "--align", "ffhq", "--size", "32",
                "--face-detector", str(no_face)])
    assert res.exit_code == 2 and "no face found" in res.output


def test_align_bad_inputs(tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (32, 32)).save(photos / "a.png")
    res = _run(["prepare", str(photos), str(tmp_path / "o"), "--align", "dlib"])
    assert res.exit_code == 2 and "--align" in res.output and "'dlib' is not one of 'ffhq'" in res.output
    wrong = tmp_path / "wrong.safetensors"
    from safetensors.torch import save_file

    save_file({"conv.weight": torch.zeros(2, 2)}, str(wrong))
    res = _run(["prepare", str(photos), str(tmp_path / "o"), "--align", "ffhq", "--face-detector", str(wrong)])
    assert res.exit_code == 2 and "not a RetinaFace" in res.output
    monkeypatch.setenv("STYLEKIT_OFFLINE", "1")
    res = _run(["prepare", str(photos), str(tmp_path / "o"), "--align", "ffhq"])
    assert res.exit_code == 3 and "stylekit download retinaface-mobilenet0.25" in res.output
    assert not (tmp_path / "o").exists()


def test_invert_align_ffhq(tmp_path):
    from stylekit.configs.edit import InvertConfig
    from stylekit.edit.invert import run_invert
    from stylekit.nets.stylegan2.load import save_network
    from stylekit.nets.stylegan2.tiny import tiny_generator

    net = save_network(tmp_path / "g.safetensors", G=tiny_generator(32, seed=0))
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(photo)
    weights = _detector_weights(tmp_path / "rf.safetensors", True, OFFSETS)
    result = run_invert(InvertConfig(target=photo, network=str(net), out=tmp_path / "inv", steps=2, loss="mse",
                                     w_avg_samples=50, align="ffhq", face_detector=str(weights)))
    assert result.items[0].status == "done"
    from stylekit.data.images import load_rgb

    target = np.asarray(load_rgb(tmp_path / "inv" / "target.png"))
    assert np.array_equal(target, np.asarray(align_ffhq(load_rgb(photo), OFFSETS + 16, 32)))
    metrics = json.loads((tmp_path / "inv" / "metrics.json").read_text())
    assert metrics["preprocessing"].startswith("ffhq-aligned")


def test_random_face_detector_is_a_labelled_stand_in(tmp_path):
    photos = tmp_path / "photos" / "people"
    photos.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(photos / f"{name}.png")
    res = _run(["prepare", str(tmp_path / "photos"), str(tmp_path / "out"), "--align", "ffhq", "--size", "16", "--split", "1",
                "--face-detector", "random", "--face-threshold", "0.01", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert "random-init stand-in" in doc["stand_in"] and "random-init stand-in" in res.stderr and doc["used"] == 2
