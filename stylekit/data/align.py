"""FFHQ-style face alignment geometry: 5 landmarks -> an oriented square crop.

The FFHQ recipe (Karras et al. 2019, NVlabs/ffhq-dataset): the crop is a square oriented by the
eye-to-eye and eye-to-mouth vectors, centred a tenth of the way from the eyes to the mouth, with a
half-side of max(2 x eye distance, 1.8 x eye-to-mouth distance). Large images are first shrunk,
parts of the square outside the image are filled by reflection with a blurred, median-faded border,
and the square is resampled at 4x the output size, then downsampled with antialiasing. FFHQ used 68
dlib points; the eye centres and mouth corners it derives from them are exactly what a 5-point
detector gives, so the same geometry applies.

Written here because no maintained library exposes this transform without pulling in dlib/OpenCV.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

LANDMARK_NAMES = ("left eye", "right eye", "nose", "left mouth corner", "right mouth corner")


def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """[5, 2] landmarks (x, y) -> [4, 2] corners: top-left, bottom-left, bottom-right, top-right.

    Raises ValueError when the points do not span a face (eyes and mouth on top of each other)."""
    pts = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    if not np.isfinite(pts).all():
        raise ValueError("face landmarks are not finite")
    eyes = (pts[0] + pts[1]) / 2
    eye_to_eye = pts[1] - pts[0]
    eye_to_mouth = (pts[3] + pts[4]) / 2 - eyes
    # x points along the eye line, corrected by the eye-to-mouth direction turned 90 degrees.
    x = eye_to_eye + np.array([eye_to_mouth[1], -eye_to_mouth[0]])
    length = math.hypot(*x)
    half_side = max(math.hypot(*eye_to_eye) * 2.0, math.hypot(*eye_to_mouth) * 1.8)
    if length < 1e-6 or half_side < 1.0:
        raise ValueError("face landmarks are degenerate (eyes and mouth do not span a face)")
    x = x / length * half_side
    y = np.array([-x[1], x[0]])  # x turned 90 degrees: points from the eyes towards the mouth
    centre = eyes + eye_to_mouth * 0.1
    return np.stack([centre - x - y, centre - x + y, centre + x + y, centre + x - y])


def to_aligned(points: np.ndarray, quad: np.ndarray, size: int) -> np.ndarray:
    """Where source-image `points` [N, 2] land in the `size` x `size` crop of `quad` (pixel-centre
    coordinates): the quad is a square, so the mapping is a similarity transform."""
    origin, right, down = quad[0], quad[3] - quad[0], quad[1] - quad[0]
    rel = np.asarray(points, dtype=np.float64) - origin
    u = rel @ right / (right @ right)
    v = rel @ down / (down @ down)
    return np.stack([u, v], axis=-1) * size - 0.5


def _reflect_pad(img: np.ndarray, pad: tuple[int, int, int, int], qsize: float) -> np.ndarray:
    """Reflect-pad (left, top, right, bottom) and fade the padding: blurred near the edge, then
    towards the image median, so mirrored features do not look like part of the face."""
    from scipy.ndimage import gaussian_filter

    left, top, right, bottom = pad  # all positive
    out = np.pad(img, ((top, bottom), (left, right), (0, 0)), mode="reflect")
    h, w = out.shape[:2]
    yy, xx = np.ogrid[:h, :w]
    near_x = np.minimum(xx / left, (w - 1 - xx) / right)
    near_y = np.minimum(yy / top, (h - 1 - yy) / bottom)
    mask = np.maximum(1.0 - near_x, 1.0 - near_y).astype(np.float32)[..., None]  # 1 at the outer edge, <= 0 inside
    blur = qsize * 0.02
    out = out + (gaussian_filter(out, [blur, blur, 0]) - out) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    out = out + (np.median(out, axis=(0, 1)) - out) * np.clip(mask, 0.0, 1.0)
    return out


def align_ffhq(img: Image.Image, landmarks: np.ndarray, size: int, supersample: int = 4) -> Image.Image:
    """The FFHQ-aligned `size` x `size` RGB crop of `img` for these 5 landmarks."""
    quad = ffhq_quad(landmarks)
    qsize = math.hypot(*(quad[3] - quad[0]))
    img = img.convert("RGB")
    shrink = int(math.floor(qsize / size * 0.5))
    if shrink > 1:  # a much larger face than the output: shrink first so the resampling stays sharp
        img = img.resize((max(1, round(img.width / shrink)), max(1, round(img.height / shrink))), Image.Resampling.LANCZOS)
        quad, qsize = quad / shrink, qsize / shrink
    border = max(round(qsize * 0.1), 3)
    lo, hi = np.floor(quad.min(axis=0)).astype(int), np.ceil(quad.max(axis=0)).astype(int)
    crop = (max(lo[0] - border, 0), max(lo[1] - border, 0), min(hi[0] + border, img.width), min(hi[1] + border, img.height))
    if crop[2] - crop[0] < img.width or crop[3] - crop[1] < img.height:
        img = img.crop(crop)
        quad = quad - crop[:2]
        lo, hi = lo - crop[:2], hi - crop[:2]
    pad = (max(border - lo[0], 0), max(border - lo[1], 0), max(hi[0] - img.width + border, 0), max(hi[1] - img.height + border, 0))
    if max(pad) > border - 4:
        grow = max(round(qsize * 0.3), 1)
        pad = (max(pad[0], grow), max(pad[1], grow), max(pad[2], grow), max(pad[3], grow))
        array = _reflect_pad(np.asarray(img, dtype=np.float32), pad, qsize)
        img = Image.fromarray(np.uint8(np.clip(np.rint(array), 0, 255)), "RGB")
        quad = quad + np.array(pad[:2])
    work = size * supersample
    img = img.transform((work, work), Image.Transform.QUAD, tuple((quad + 0.5).flatten()), Image.Resampling.BILINEAR)
    return img.resize((size, size), Image.Resampling.LANCZOS) if work != size else img
