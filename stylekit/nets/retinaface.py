"""RetinaFace (MobileNet-0.25) face detector with 5 landmarks, for FFHQ-style alignment.

The network layout and parameter names follow biubug6/Pytorch_Retinaface (MIT), so its released
`mobilenet0.25_Final.pth` (re-hosted by facexlib, registry name `retinaface-mobilenet0.25`) loads
with `load_state_dict`. Written here rather than taken from facexlib because that package loads its
weights with a plain `torch.load` and pulls in OpenCV/numba; stylekit reads the file as data only.

Landmark order: left eye, right eye, nose, left mouth corner, right mouth corner ("left" = smaller x
in the image, the same convention as FFHQ's dlib points).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from stylekit.errors import BadInput
from stylekit.io.state_dict import read_state_dict
from stylekit.standins import is_random
from stylekit.weights import weights_path

# Anchors per pyramid level (pixels), strides, and the box/landmark encoding variances of the release.
MIN_SIZES = ((16, 32), (64, 128), (256, 512))
STRIDES = (8, 16, 32)
VARIANCES = (0.1, 0.2)
BGR_MEAN = (104.0, 117.0, 123.0)  # the release was trained on BGR 0-255 minus these means


def _conv_bn(cin: int, cout: int, stride: int = 1, leaky: float | None = 0.0, kernel: int = 3) -> nn.Sequential:
    """conv (no bias) -> BN [-> LeakyReLU]; indices 0/1/2 are the parameter names of the release."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout)]
    if leaky is not None:
        layers.append(nn.LeakyReLU(leaky, inplace=True))
    return nn.Sequential(*layers)


def _depthwise_separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    """3x3 depthwise -> BN -> LeakyReLU(0.1) -> 1x1 pointwise -> BN -> LeakyReLU(0.1)."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.LeakyReLU(0.1, inplace=True),
        nn.Conv2d(cin, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1, inplace=True),
    )


class MobileNetV1x025(nn.Module):
    """The three stages of MobileNet-V1 at width 0.25 (strides 8, 16, 32)."""

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(
            _conv_bn(3, 8, 2, leaky=0.1),
            _depthwise_separable(8, 16, 1), _depthwise_separable(16, 32, 2), _depthwise_separable(32, 32, 1),
            _depthwise_separable(32, 64, 2), _depthwise_separable(64, 64, 1),
        )
        self.stage2 = nn.Sequential(_depthwise_separable(64, 128, 2), *[_depthwise_separable(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(_depthwise_separable(128, 256, 2), _depthwise_separable(256, 256, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c1 = self.stage1(x)
        c2 = self.stage2(c1)
        return [c1, c2, self.stage3(c2)]


class FeaturePyramid(nn.Module):
    def __init__(self, in_channels: tuple[int, int, int], out: int) -> None:
        super().__init__()
        leaky = 0.1 if out <= 64 else 0.0
        self.output1 = _conv_bn(in_channels[0], out, leaky=leaky, kernel=1)
        self.output2 = _conv_bn(in_channels[1], out, leaky=leaky, kernel=1)
        self.output3 = _conv_bn(in_channels[2], out, leaky=leaky, kernel=1)
        self.merge1 = _conv_bn(out, out, leaky=leaky)
        self.merge2 = _conv_bn(out, out, leaky=leaky)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        p1, p2, p3 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
        p2 = self.merge2(p2 + F.interpolate(p3, size=p2.shape[-2:], mode="nearest"))
        p1 = self.merge1(p1 + F.interpolate(p2, size=p1.shape[-2:], mode="nearest"))
        return [p1, p2, p3]


class ContextModule(nn.Module):
    """SSH context module: 3x3, 5x5 (two 3x3) and 7x7 (three 3x3) branches concatenated."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        leaky = 0.1 if cout <= 64 else 0.0
        self.conv3X3 = _conv_bn(cin, cout // 2, leaky=None)
        self.conv5X5_1 = _conv_bn(cin, cout // 4, leaky=leaky)
        self.conv5X5_2 = _conv_bn(cout // 4, cout // 4, leaky=None)
        self.conv7X7_2 = _conv_bn(cout // 4, cout // 4, leaky=leaky)
        self.conv7x7_3 = _conv_bn(cout // 4, cout // 4, leaky=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mid = self.conv5X5_1(x)
        return F.relu(torch.cat([self.conv3X3(x), self.conv5X5_2(mid), self.conv7x7_3(self.conv7X7_2(mid))], dim=1))


class _Head(nn.Module):
    """1x1 conv predicting `per_anchor` numbers for each of 2 anchors per position -> [B, H*W*2, per_anchor]."""

    def __init__(self, cin: int, per_anchor: int) -> None:
        super().__init__()
        self.per_anchor = per_anchor
        self.conv1x1 = nn.Conv2d(cin, 2 * per_anchor, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1)
        return out.reshape(out.shape[0], -1, self.per_anchor)


class RetinaFace(nn.Module):
    """MobileNet-0.25 RetinaFace: BGR-mean-subtracted 0-255 input -> (boxes, face logits, landmarks)
    as raw anchor offsets; `detect_faces` decodes them."""

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        self.body = MobileNetV1x025()
        self.fpn = FeaturePyramid((64, 128, 256), channels)
        self.ssh1, self.ssh2, self.ssh3 = (ContextModule(channels, channels) for _ in range(3))
        self.ClassHead = nn.ModuleList(_Head(channels, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(_Head(channels, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(_Head(channels, 10) for _ in range(3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p = self.fpn(self.body(x))
        feats = [self.ssh1(p[0]), self.ssh2(p[1]), self.ssh3(p[2])]
        loc = torch.cat([h(f) for h, f in zip(self.BboxHead, feats, strict=True)], dim=1)
        logits = torch.cat([h(f) for h, f in zip(self.ClassHead, feats, strict=True)], dim=1)
        landmarks = torch.cat([h(f) for h, f in zip(self.LandmarkHead, feats, strict=True)], dim=1)
        return loc, logits, landmarks


def anchors(height: int, width: int, device: torch.device) -> torch.Tensor:
    """[N, 4] anchors (cx, cy, w, h) in pixels, in the order the heads emit them: per level, row-major
    positions, both anchor sizes per position."""
    rows = []
    for stride, sizes in zip(STRIDES, MIN_SIZES, strict=True):
        fh, fw = math.ceil(height / stride), math.ceil(width / stride)
        cy, cx = torch.meshgrid((torch.arange(fh, device=device) + 0.5) * stride,
                                (torch.arange(fw, device=device) + 0.5) * stride, indexing="ij")
        centres = torch.stack([cx.reshape(-1), cy.reshape(-1)], dim=1).repeat_interleave(len(sizes), dim=0)
        wh = torch.tensor(sizes, dtype=torch.float32, device=device).repeat(fh * fw).unsqueeze(1).expand(-1, 2)
        rows.append(torch.cat([centres, wh], dim=1))
    return torch.cat(rows)


def decode(loc: torch.Tensor, landmarks: torch.Tensor, priors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor offsets -> boxes [N, 4] (x0, y0, x1, y1) and landmarks [N, 5, 2], in pixels."""
    centre = priors[:, :2] + loc[:, :2] * VARIANCES[0] * priors[:, 2:]
    size = priors[:, 2:] * torch.exp(loc[:, 2:] * VARIANCES[1])
    boxes = torch.cat([centre - size / 2, centre + size / 2], dim=1)
    points = priors[:, None, :2] + landmarks.reshape(-1, 5, 2) * VARIANCES[0] * priors[:, None, 2:]
    return boxes, points


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple[tuple[float, float], ...]  # 5 (x, y) points

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


class FaceDetector:
    """Runs RetinaFace on RGB uint8 arrays; returns faces sorted by area, largest first."""

    def __init__(self, net: RetinaFace, device: torch.device | str = "cpu", threshold: float = 0.8,
                 nms_iou: float = 0.4, max_side: int = 1024) -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.threshold, self.nms_iou, self.max_side = threshold, nms_iou, max_side

    @torch.no_grad()
    def __call__(self, rgb: torch.Tensor) -> list[Face]:
        """`rgb`: [H, W, 3] uint8 (any device). Large images are detected at `max_side` and mapped back."""
        from torchvision.ops import nms

        h, w = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        x = rgb.to(self.device, torch.float32).permute(2, 0, 1).flip(0).unsqueeze(0)  # RGB -> BGR
        if scale < 1.0:
            x = F.interpolate(x, scale_factor=scale, mode="area")
        x = x - torch.tensor(BGR_MEAN, device=self.device).view(1, 3, 1, 1)
        loc, logits, lms = self.net(x)
        boxes, points = decode(loc[0].float(), lms[0].float(), anchors(x.shape[2], x.shape[3], self.device))
        scores = logits[0].float().softmax(-1)[:, 1]
        keep = scores > self.threshold
        boxes, points, scores = boxes[keep], points[keep], scores[keep]
        kept = nms(boxes, scores, self.nms_iou)
        boxes, points, scores = boxes[kept] / scale, points[kept] / scale, scores[kept]
        faces = [Face(tuple(b), s, tuple(map(tuple, p)))  # type: ignore[arg-type]
                 for b, s, p in zip(boxes.tolist(), scores.tolist(), points.tolist(), strict=True)]
        return sorted(faces, key=lambda f: (-f.area, -f.score))


def load_face_detector(weights: str | Path, device: torch.device | str = "cpu", threshold: float = 0.8) -> FaceDetector:
    """A registry name (`retinaface-mobilenet0.25`), a local .pth/.safetensors state dict, or `random` (a seeded
    random-init stand-in, for trying `prepare --align` offline) -> detector."""

    if is_random(str(weights)):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return FaceDetector(RetinaFace(), device, threshold)

    hint = "give the RetinaFace MobileNet-0.25 weights: `stylekit download retinaface-mobilenet0.25`, or that file's path"
    path = weights_path(weights)
    state = read_state_dict(path, "RetinaFace weights file", hint)
    net = RetinaFace()
    expected = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    wrong = [k for k, v in expected.items() if k not in state or state[k].shape != v.shape]
    if wrong or len(state) != len(expected):
        raise BadInput(f"{path} is not a RetinaFace MobileNet-0.25 state dict "
                       f"({len(wrong)} of {len(expected)} tensors missing or of another shape, e.g. '{(wrong or list(state))[0]}')",
                       hint=hint)
    net.load_state_dict(state, strict=False)  # only the BN step counters may be absent
    return FaceDetector(net, device, threshold)
