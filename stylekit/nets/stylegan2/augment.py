"""Differentiable augmentation of every image the discriminator sees (StyleGAN2-ADA, Karras et al. 2020).

Groups and default strengths follow NVlabs `training/augment.py` (probabilities are strength * p):
  blit    xflip, rotate90, integer translation (xint, max 0.125 of the size)
  geom    isotropic scale (std 0.2 octaves), rotation (max 1 * pi, applied before and after the
          anisotropic scale with probability 1 - sqrt(1 - p) each), anisotropic scale (std 0.2),
          fractional translation (std 0.125)
  color   brightness (std 0.2), contrast (std 0.5 octaves), luma flip, hue rotation (max 1 * pi),
          saturation (std 1 octave) as one 4x4 colour matrix per image
  filter  per-band gains (std 1 octave) of a 4-band filter bank, expected power kept
  noise   additive Gaussian noise (sigma ~ |N(0, 0.1)|)
  cutout  a zeroed square of half the image size
Presets bg = blit+geom, bgc = bg+color (the default), bgcf, bgcfn, bgcfnc are cumulative.

Own implementation in plain PyTorch (no custom ops): geometric transforms are one `grid_sample` per
batch with reflection padding, evaluated at 2x and average-pooled for the non-integer ones (exact
resampling for the blit ones, which map pixel centres to pixel centres). torch's grid_sample supports
the double backward that R1 needs (gradients of D's input gradient w.r.t. D's weights), so no
gradfix is needed. Images untouched by a transform are passed through bit for bit.

Randomness comes from a `BatchRandom`: draws are made for the *global* batch and each process
keeps its rows, so N processes augment exactly as one process with the whole batch does.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

GROUPS: dict[str, dict[str, float]] = {
    "blit": dict(xflip=1, rotate90=1, xint=1),
    "geom": dict(scale=1, rotate=1, aniso=1, xfrac=1),
    "color": dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1),
    "filter": dict(imgfilter=1),
    "noise": dict(noise=1),
    "cutout": dict(cutout=1),
}
_LETTERS = {"b": "blit", "g": "geom", "c": "color", "f": "filter", "n": "noise"}
AUGPIPES: dict[str, dict[str, float]] = {name: dict(spec) for name, spec in GROUPS.items()}
for _name in ("bg", "bgc", "bgcf", "bgcfn"):
    AUGPIPES[_name] = {k: v for letter in _name for k, v in GROUPS[_LETTERS[letter]].items()}
AUGPIPES["bgcfnc"] = {**AUGPIPES["bgcfn"], **GROUPS["cutout"]}

# NVlabs defaults for the ranges of each transform.
XINT_MAX, SCALE_STD, ROTATE_MAX, ANISO_STD, XFRAC_STD = 0.125, 0.2, 1.0, 0.2, 0.125
BRIGHTNESS_STD, CONTRAST_STD, HUE_MAX, SATURATION_STD = 0.2, 0.5, 1.0, 1.0
IMGFILTER_STD, NOISE_STD, CUTOUT_SIZE = 1.0, 0.1, 0.5
BAND_POWER = (10.0, 1.0, 1.0, 1.0)  # expected power of the 4 bands (natural images: mostly low)
FILTER_TAPS = 17
LUMA_AXIS = (1 / math.sqrt(3),) * 3  # the grey axis hue rotates about


class BatchRandom:
    """Random draws for this process's rows of a minibatch, made on `device` (never on the host and
    copied): `generator` is a generator of that device (None: the device's global one).

    `shared` (a Python RNG, seeded the same on every process) gives the draws the whole minibatch
    shares, such as the style-mixing cut-off: plain host numbers, never a tensor read.
    """

    def __init__(self, generator: torch.Generator | None = None, device: torch.device | str = "cpu",
                 shared: random.Random | None = None) -> None:
        self.generator = generator
        self.device = torch.device(device)
        self.shared = shared if shared is not None else random.Random(0)

    def rand(self, n: int, *shape: int) -> torch.Tensor:
        return torch.rand((n, *shape), generator=self.generator, device=self.device)

    def randn(self, n: int, *shape: int) -> torch.Tensor:
        return torch.randn((n, *shape), generator=self.generator, device=self.device)

    def shared_rand(self) -> float:
        """One number shared by the whole global batch (e.g. the style-mixing decision)."""
        return self.shared.random()

    def shared_randint(self, low: int, high: int) -> int:
        """An integer in [low, high), shared by the whole global batch."""
        return self.shared.randrange(low, high)


def _where(mask: torch.Tensor, value: torch.Tensor, default: float) -> torch.Tensor:
    return torch.where(mask, value, torch.full_like(value, default))


def _mat3(n: int, device: torch.device) -> torch.Tensor:
    return torch.eye(3, device=device).repeat(n, 1, 1)


def _scale(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    m = _mat3(sx.shape[0], sx.device)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def _translate(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    m = _mat3(tx.shape[0], tx.device)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def _rotate(theta: torch.Tensor) -> torch.Tensor:
    m = _mat3(theta.shape[0], theta.device)
    c, s = torch.cos(theta), torch.sin(theta)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    return m


def _lowpass(cutoff: float, taps: int = FILTER_TAPS) -> torch.Tensor:
    """Hann-windowed sinc low-pass, cutoff as a fraction of Nyquist, unit DC gain (float64)."""
    n = torch.arange(taps, dtype=torch.float64, device="cpu") - (taps - 1) / 2
    h = torch.special.sinc(n * cutoff) * torch.hann_window(taps + 2, periodic=False, dtype=torch.float64, device="cpu")[1:-1]
    return h / h.sum()


def filter_bank(taps: int = FILTER_TAPS) -> torch.Tensor:
    """4 complementary 1-D bands (0-1/8, 1/8-1/4, 1/4-1/2, 1/2-1 of Nyquist) summing to a unit impulse."""
    lp = [_lowpass(c, taps) for c in (0.125, 0.25, 0.5)]
    delta = torch.zeros(taps, dtype=torch.float64, device="cpu")
    delta[taps // 2] = 1
    return torch.stack([lp[0], lp[1] - lp[0], lp[2] - lp[1], delta - lp[2]])


@dataclass
class AugmentStrengths:
    """Per-transform multipliers of p (0 = off)."""

    xflip: float = 0
    rotate90: float = 0
    xint: float = 0
    scale: float = 0
    rotate: float = 0
    aniso: float = 0
    xfrac: float = 0
    brightness: float = 0
    contrast: float = 0
    lumaflip: float = 0
    hue: float = 0
    saturation: float = 0
    imgfilter: float = 0
    noise: float = 0
    cutout: float = 0


class AugmentPipe(torch.nn.Module):
    """`pipe(images, rnd)` -> augmented images ([-1, 1] range, NCHW, square); `pipe.p` is the strength.

    With p == 0 (or no transform drawn) the input is returned unchanged. No decision reads a value
    back from the device (as NVlabs): every enabled transform is computed for the whole batch and
    selected per image with `torch.where`, so untouched images still pass through bit for bit.
    """

    def __init__(self, augpipe: str = "bgc", p: float = 0.0, **strengths: float) -> None:
        super().__init__()
        if augpipe not in AUGPIPES:
            raise ValueError(f"unknown augpipe {augpipe!r}; choose from {', '.join(AUGPIPES)}")
        self.augpipe = augpipe
        self.strengths = AugmentStrengths(**{**AUGPIPES[augpipe], **strengths})
        self.register_buffer("bands", filter_bank().float(), persistent=False)
        self.register_buffer("p_tensor", torch.tensor(float(p), dtype=torch.float64, device="cpu"), persistent=False)

    @property
    def p(self) -> torch.Tensor:
        """The strength, a scalar on the pipe's device (the ADA controller writes it there: no sync)."""
        return self.p_tensor

    @p.setter
    def p(self, value: float | torch.Tensor) -> None:
        if isinstance(value, torch.Tensor):
            self.p_tensor.copy_(value)
        else:
            self.p_tensor.fill_(float(value))

    def extra_repr(self) -> str:
        return f"augpipe={self.augpipe}"

    def forward(self, images: torch.Tensor, rnd: BatchRandom | None = None) -> torch.Tensor:
        rnd = rnd or BatchRandom(device=images.device)
        s = self.strengths
        images = self._geometric(images, rnd, s)
        if s.brightness or s.contrast or s.lumaflip or s.hue or s.saturation:
            images = self._color(images, rnd, s)
        if s.imgfilter:
            images = self._filter(images, rnd, s)
        if s.noise:
            n = images.shape[0]
            sigma = _where(rnd.rand(n) < s.noise * self.p, rnd.randn(n).abs() * NOISE_STD, 0.0)
            noise = rnd.randn(n, *images.shape[1:])
            images = torch.where((sigma > 0).view(-1, 1, 1, 1), images + noise * sigma.view(-1, 1, 1, 1), images)
        if s.cutout:
            images = self._cutout(images, rnd, s)
        return images

    # ------------------------------------------------------------------------------------ geometry
    def _prob(self, rnd: BatchRandom, n: int, strength: float) -> torch.Tensor:
        return rnd.rand(n) < strength * self.p

    def _geometric(self, images: torch.Tensor, rnd: BatchRandom, s: AugmentStrengths) -> torch.Tensor:
        n, _, h, w = images.shape
        dev = images.device
        m = _mat3(n, dev)  # output (normalised) coordinates -> input coordinates
        blit = torch.zeros(n, dtype=torch.bool, device=dev)
        fine = torch.zeros(n, dtype=torch.bool, device=dev)
        if s.xflip:
            i = torch.floor(rnd.rand(n) * 2)
            on = self._prob(rnd, n, s.xflip) & (i > 0)
            m = m @ _scale(torch.where(on, -1.0, 1.0), torch.ones(n, device=dev))
            blit |= on
        if s.rotate90:
            i = torch.floor(rnd.rand(n) * 4)
            on = self._prob(rnd, n, s.rotate90) & (i > 0)
            m = m @ _rotate(_where(on, i * (math.pi / 2), 0.0))
            blit |= on
        if s.xint:
            t = (rnd.rand(n, 2) * 2 - 1) * XINT_MAX
            on = self._prob(rnd, n, s.xint)
            px = torch.round(t * torch.tensor([w, h], device=dev))
            px = torch.where(on[:, None], px, torch.zeros_like(px))
            m = m @ _translate(2 * px[:, 0] / w, 2 * px[:, 1] / h)
            blit |= (px != 0).any(1)
        if s.scale:
            sc = torch.exp2(rnd.randn(n) * SCALE_STD)
            on = self._prob(rnd, n, s.scale)
            sc = _where(on, sc, 1.0)
            m = m @ _scale(1 / sc, 1 / sc)
            fine |= on
        p_rot = 1 - torch.sqrt((1 - s.rotate * self.p).clamp(min=0))
        for step in ("pre", "aniso", "post"):
            if step == "aniso":
                if s.aniso:
                    sc = torch.exp2(rnd.randn(n) * ANISO_STD)
                    on = self._prob(rnd, n, s.aniso)
                    sc = _where(on, sc, 1.0)
                    m = m @ _scale(1 / sc, sc)
                    fine |= on
                continue
            if s.rotate:
                theta = (rnd.rand(n) * 2 - 1) * math.pi * ROTATE_MAX
                on = rnd.rand(n) < p_rot
                m = m @ _rotate(_where(on, theta, 0.0))
                fine |= on
        if s.xfrac:
            t = rnd.randn(n, 2) * XFRAC_STD
            on = self._prob(rnd, n, s.xfrac)
            t = torch.where(on[:, None], t, torch.zeros_like(t))
            m = m @ _translate(2 * t[:, 0], 2 * t[:, 1])
            fine |= on
        blit &= ~fine
        if not (s.xflip or s.rotate90 or s.xint or s.scale or s.rotate or s.aniso or s.xfrac):
            return images
        theta = m[:, :2, :]
        out = images
        if s.xflip or s.rotate90 or s.xint:
            grid = F.affine_grid(theta, [n, images.shape[1], h, w], align_corners=False)
            exact = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
            out = torch.where(blit.view(-1, 1, 1, 1), exact, out)
        if s.scale or s.rotate or s.aniso or s.xfrac:
            grid = F.affine_grid(theta, [n, images.shape[1], 2 * h, 2 * w], align_corners=False)
            sampled = F.avg_pool2d(
                F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False), 2
            )
            out = torch.where(fine.view(-1, 1, 1, 1), sampled, out)
        return out

    # ------------------------------------------------------------------------------------- colour
    def _color(self, images: torch.Tensor, rnd: BatchRandom, s: AugmentStrengths) -> torch.Tensor:
        n, c = images.shape[:2]
        dev = images.device
        eye = torch.eye(4, device=dev)
        cm = eye.repeat(n, 1, 1)
        axis = torch.tensor([1.0, 1.0, 1.0, 0.0], device=dev) / math.sqrt(3)
        vv = torch.outer(axis, axis)
        touched = torch.zeros(n, dtype=torch.bool, device=dev)
        if s.brightness:
            b = rnd.randn(n) * BRIGHTNESS_STD
            on = self._prob(rnd, n, s.brightness)
            b = _where(on, b, 0.0)
            t = eye.repeat(n, 1, 1)
            t[:, :3, 3] = b[:, None]
            cm = t @ cm
            touched |= on
        if s.contrast:
            k = torch.exp2(rnd.randn(n) * CONTRAST_STD)
            k = _where(self._prob(rnd, n, s.contrast), k, 1.0)
            t = eye.repeat(n, 1, 1)
            t[:, 0, 0], t[:, 1, 1], t[:, 2, 2] = k, k, k
            cm = t @ cm
            touched |= k != 1
        if s.lumaflip:
            i = torch.floor(rnd.rand(n) * 2)
            on = self._prob(rnd, n, s.lumaflip) & (i > 0)
            cm = (eye - 2 * vv * on.float().view(-1, 1, 1)) @ cm
            touched |= on
        if s.hue and c > 1:
            theta = (rnd.rand(n) * 2 - 1) * math.pi * HUE_MAX
            on = self._prob(rnd, n, s.hue)
            theta = _where(on, theta, 0.0)
            cm = _rotate_about(LUMA_AXIS, theta) @ cm
            touched |= on
        if s.saturation and c > 1:
            k = torch.exp2(rnd.randn(n) * SATURATION_STD)
            on = self._prob(rnd, n, s.saturation)
            k = _where(on, k, 1.0)
            cm = (vv + (eye - vv) * k.view(-1, 1, 1)) @ cm
            touched |= on
        flat = images.reshape(n, c, -1)
        if c == 3:
            flat = cm[:, :3, :3] @ flat + cm[:, :3, 3:]
        elif c == 1:
            flat = cm[:, :3, :3].mean(dim=2, keepdim=True) @ flat + cm[:, :3, 3:]
            flat = flat.mean(dim=1, keepdim=True)
        else:
            raise ValueError("colour augmentation needs 1 or 3 channels")
        return torch.where(touched.view(-1, 1, 1, 1), flat.reshape(images.shape), images)

    # ------------------------------------------------------------------------------------- filter
    def _filter(self, images: torch.Tensor, rnd: BatchRandom, s: AugmentStrengths) -> torch.Tensor:
        n, c, h, w = images.shape
        dev = images.device
        power = torch.tensor(BAND_POWER, device=dev)
        power = power / power.sum()
        gains = torch.ones(n, len(BAND_POWER), device=dev)
        touched = torch.zeros(n, dtype=torch.bool, device=dev)
        for band in range(len(BAND_POWER)):
            g = torch.exp2(rnd.randn(n) * IMGFILTER_STD)
            on = self._prob(rnd, n, s.imgfilter)
            g = _where(on, g, 1.0)
            t = torch.ones_like(gains)
            t[:, band] = g
            t = t / (power * t.square()).sum(dim=1, keepdim=True).sqrt()
            gains = gains * t
            touched |= on
        taps = gains @ self.bands.to(dev)  # [n, L] one 1-D filter per image
        length = taps.shape[1]
        kernel = taps.repeat_interleave(c, dim=0)  # [n*c, L]
        x = images.reshape(1, n * c, h, w)
        pad = length // 2
        x = F.conv2d(F.pad(x, [pad, pad, 0, 0], mode="reflect"), kernel.view(n * c, 1, 1, length), groups=n * c)
        x = F.conv2d(F.pad(x, [0, 0, pad, pad], mode="reflect"), kernel.view(n * c, 1, length, 1), groups=n * c)
        return torch.where(touched.view(-1, 1, 1, 1), x.reshape(images.shape), images)

    # ------------------------------------------------------------------------------------- cutout
    def _cutout(self, images: torch.Tensor, rnd: BatchRandom, s: AugmentStrengths) -> torch.Tensor:
        n, _, h, w = images.shape
        dev = images.device
        size = _where(self._prob(rnd, n, s.cutout), torch.full((n,), CUTOUT_SIZE, device=dev), 0.0)
        centre = rnd.rand(n, 2)
        ys = ((torch.arange(h, device=dev) + 0.5) / h).view(1, h, 1)
        xs = ((torch.arange(w, device=dev) + 0.5) / w).view(1, 1, w)
        keep = ((xs - centre[:, 0].view(-1, 1, 1)).abs() >= size.view(-1, 1, 1) / 2) | (
            (ys - centre[:, 1].view(-1, 1, 1)).abs() >= size.view(-1, 1, 1) / 2
        )
        return torch.where((size > 0).view(-1, 1, 1, 1), images * keep.unsqueeze(1).to(images.dtype), images)


def _rotate_about(axis: tuple[float, float, float], theta: torch.Tensor) -> torch.Tensor:
    """4x4 homogeneous rotations by `theta` about the unit 3-vector `axis` (Rodrigues)."""
    n = theta.shape[0]
    x, y, z = axis
    k = torch.tensor([[0, -z, y], [z, 0, -x], [-y, x, 0]], device=theta.device, dtype=theta.dtype)
    kk = k @ k
    s, c = torch.sin(theta).view(-1, 1, 1), torch.cos(theta).view(-1, 1, 1)
    r = torch.eye(3, device=theta.device).expand(n, 3, 3) + s * k + (1 - c) * kk
    out = torch.eye(4, device=theta.device).repeat(n, 1, 1)
    out[:, :3, :3] = r
    return out
