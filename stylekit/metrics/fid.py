"""FID and KID through clean-fid's preprocessing and the TF Inception-v3 graph, with its pitfalls guarded.

clean-fid supplies the per-mode resize/quantisation (`build_resizer`) and the pytorch-fid port of TF's
Inception-v3 2015-12-05 blocks; stylekit supplies what clean-fid lacks for unattended use:
- the file list: recursive, case-insensitive extensions, zip files, each image validated and a corrupt
  one skipped and reported instead of killing the run (clean-fid's glob misses `.Png` and one bad
  file raises inside its DataLoader);
- the Inception weights come from stylekit's registry (`inception-fid`: pytorch-fid's state dict,
  sha256-pinned, in $STYLEKIT_HOME) instead of an unchecked download to /tmp; offline without them ->
  exit 3;
- nothing from a downloaded file is executed: clean-fid's `clean`/`legacy_tensorflow` feature model is
  NVlabs' TorchScript archive (torch.jit.load runs its code), so stylekit builds the same TF graph from
  pytorch-fid's port (torchvision Inception3 + clean-fid's FIDInception blocks) and loads the state dict
  with torch.load(weights_only=True). Per mode it feeds the network what clean-fid's model sees:
  (x - 128) / 128 after clean-fid's resize (`clean`), after TF1's bilinear resize to 299 done in torch
  (`legacy_tensorflow`, as the TorchScript does inside), or 2 x / 255 - 1 (`legacy_pytorch`);
- no DataParallel (it breaks non-default devices), no stats written into site-packages;
- features go through the per-image cache (features.py), so reruns compute nothing.
Images are decoded the way clean-fid decodes them (`convert("RGB")`). With the same feature model the
numbers equal `cleanfid.fid.compute_fid` up to float round-off (tests inject one); against clean-fid's TorchScript Inception
they differ by what separates the pytorch-fid port from it (small; see docs/metrics.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from stylekit.data.http import sha256_file
from stylekit.device import full_fp32
from stylekit.errors import BadInput, MissingResource
from stylekit.home import stylekit_home
from stylekit.io.paths import open_regular
from stylekit.io.state_dict import read_state_dict
from stylekit.metrics.features import file_identity
from stylekit.standins import is_random
from stylekit.weights import offline, weights_path

MODES = ("clean", "legacy_pytorch", "legacy_tensorflow")
INCEPTION_WEIGHTS = "inception-fid"  # registry name: pytorch-fid's pt_inception-2015-12-05-6726825d.pth
EXTRACTOR_NAME = "inception-fid-pytorch"  # feature-cache identity of the registry network
RANDOM_EXTRACTOR_NAME = "inception-random(seed=0)"  # the `random` stand-in (its features are cached apart)
INCEPTION_SIZE = 299
LOGITS_DIM = 1008  # the TF graph's classes (1000 ImageNet + 8 unused)
STATS_URL = "https://www.cs.cmu.edu/~clean-fid/stats"
FID_WARN_BELOW = 2048

# clean-fid's hosted reference statistics: (name, resolution) -> splits (first = default).
KNOWN_STATS: dict[tuple[str, int], tuple[str, ...]] = {
    ("cifar10", 32): ("train", "test"),
    ("ffhq", 1024): ("trainval70k", "trainval"),
    ("ffhq", 256): ("trainval70k", "trainval"),
    ("lsun_church", 256): ("train",),
    ("lsun_horse", 256): ("train",),
    ("lsun_cat", 256): ("train", "trainfull"),
    ("afhq_cat", 512): ("train",),
    ("afhq_dog", 512): ("train",),
    ("afhq_wild", 512): ("train",),
    ("brecahad", 512): ("train",),
    ("metfaces", 1024): ("train",),
    ("horse2zebra", 256): ("test",),
    ("cat2dog", 256): ("test",),
}


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise BadInput(f"bad --mode '{mode}'", hint=f"use one of {', '.join(MODES)}")
    return mode


class CleanFidPreprocess:
    """clean-fid's per-image step for `mode`: its resizer, then the same tensor conversion as its
    ResizeDataset (uint8 -> ToTensor()*255, float32 kept). Picklable for DataLoader workers."""

    def __init__(self, mode: str) -> None:
        self.mode = check_mode(mode)
        self._fn: Callable[[np.ndarray], np.ndarray] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"mode": self.mode, "_fn": None}

    def __call__(self, img: Image.Image) -> torch.Tensor:
        if self._fn is None:
            from cleanfid.resize import build_resizer

            self._fn = build_resizer(self.mode)
        out = self._fn(np.array(img))
        t = torch.from_numpy(np.ascontiguousarray(np.asarray(out).transpose(2, 0, 1)))
        if t.dtype == torch.uint8:
            return t.float().div(255) * 255
        return t.float()


class InceptionExtractor:
    """clean-fid's feature model for `mode` behind the FeatureExtractor protocol.

    `model` injects any callable taking clean-fid's input ([N,3,299,299] floats in [0,255]; native size
    for legacy_tensorflow) and returning [N, dim] (tests and benchmarks use a tiny random network);
    otherwise the Inception is built from `weights` (registry name or path to a pytorch-fid state dict;
    default `inception-fid`). `logits`: the 1008 bias-free class logits (Inception score) instead of
    the 2048-d pool features.
    """

    cleanfid_decode = True

    def __init__(self, mode: str = "clean", device: torch.device | str = "cpu", weights: str | None = None,
                 model: Callable[[torch.Tensor], Any] | None = None, name: str | None = None, dim: int = 2048,
                 logits: bool = False) -> None:
        self.mode = check_mode(mode)
        self.device = torch.device(device)
        self.logits = logits
        self.dim = LOGITS_DIM if logits and model is None else dim
        self.preprocess = CleanFidPreprocess(mode)
        self._model = model
        self._path: Path | None = None
        if model is not None:
            self.name = name or "custom"
            self.version = "injected"
        else:
            # Resolve (and verify) the weights now so a missing file fails before any decoding; load
            # the network only when some image is not cached, so a cached rerun never pays for it.
            self._path, self.name = _resolve_inception(weights)
            if logits:
                self.name += "+logits"
            self.version = f"pytorch-fid Inception port, clean-fid {_cleanfid_version()} preprocessing"

    @property
    def model(self) -> Callable[[torch.Tensor], Any]:
        if self._model is None:
            self._model = InceptionFeatures(load_fid_inception(self._path, self.device, self.logits), self.mode).to(self.device).eval()
        return self._model

    def __call__(self, batch: torch.Tensor) -> Any:

        x = batch.to(self.device)
        if self.device.type == "cpu":
            # oneDNN runs channels-last convolutions without reordering the activations around every
            # layer: Inception-v3 at 299 px runs ~1.5x faster; features move by ~1e-7 relative.
            x = x.contiguous(memory_format=torch.channels_last)
        with full_fp32():  # FID features must not depend on the GPU generation (TF32 off)
            return self.model(x)


def _cleanfid_version() -> str:

    try:
        return version("clean-fid")
    except PackageNotFoundError:
        return "unknown"


def _resolve_inception(weights: str | None) -> tuple[Path | None, str]:
    """The weights file (registry or local; None for the `random` stand-in) and the extractor name (the
    feature-cache identity)."""

    if is_random(weights):
        return None, RANDOM_EXTRACTOR_NAME
    name = weights or INCEPTION_WEIGHTS
    local = Path(name).expanduser().is_file()
    path = weights_path(name)
    if name == INCEPTION_WEIGHTS and not local:
        return path, EXTRACTOR_NAME
    _check_name_hash(path)
    return path, f"inception-pt:{_identity(path)}"


def _check_name_hash(path: Path) -> None:
    """A local `<name>-<hex>.pth` must hash to that prefix, as torch.hub checks its downloads."""
    m = re.search(r"-([0-9a-f]{8,64})\.[A-Za-z]+$", path.name)
    if m is None:
        return

    digest = sha256_file(path)
    if not digest.startswith(m.group(1)):
        raise BadInput(f"{path}: sha256 {digest[:16]}... does not start with the {m.group(1)} its name promises "
                       "(corrupt or not the file it is named after)",
                       hint=f"run `stylekit download {INCEPTION_WEIGHTS}` and leave --inception-weights out")


_MIXED = ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
          "Mixed_7a", "Mixed_7b", "Mixed_7c")


class FIDInceptionV3(torch.nn.Module):
    """TF Inception-v3 2015-12-05 as ported by pytorch-fid, up to the 2048-d pool_3 features.

    torchvision's Inception3 (1008 classes, no aux head) with the blocks that differ in the TF graph
    replaced by clean-fid's FIDInception* copies of pytorch-fid's; built without any download so the
    state dict comes only from `load_fid_inception`. Input: [N,3,299,299] scaled to [-1, 1].
    """

    def __init__(self) -> None:
        super().__init__()
        import torchvision
        from cleanfid.inception_pytorch import FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2

        net = torchvision.models.inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=False)
        net.Mixed_5b = FIDInceptionA(192, pool_features=32)
        net.Mixed_5c = FIDInceptionA(256, pool_features=64)
        net.Mixed_5d = FIDInceptionA(288, pool_features=64)
        net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        net.Mixed_7b = FIDInceptionE_1(1280)
        net.Mixed_7c = FIDInceptionE_2(2048)
        self.net = net
        self.logits = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        x = net.maxpool1(net.Conv2d_2b_3x3(net.Conv2d_2a_3x3(net.Conv2d_1a_3x3(x))))
        x = net.maxpool2(net.Conv2d_4a_3x3(net.Conv2d_3b_1x1(x)))
        for name in _MIXED:
            x = getattr(net, name)(x)
        pool = net.avgpool(x).flatten(1)
        return net.fc(pool) if self.logits else pool


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """pytorch-fid's state dict (.pth or .safetensors); TorchScript such as NVlabs' inception-2015-12-05.pt is refused."""
    return read_state_dict(path, "Inception state dict",
                           f"run `stylekit download {INCEPTION_WEIGHTS}` (pytorch-fid's state dict of the TF graph)")


def load_fid_inception(path: Path | None, device: torch.device | str = "cpu", logits: bool = False) -> FIDInceptionV3:
    """The FID Inception in eval mode with pytorch-fid's weights from `path` (strict key/shape match), or
    seeded random init for path None (the `random` stand-in); `logits`: return the 1008 class logits
    (bias-free) instead of the 2048-d pool features."""
    state = _read_state_dict(Path(path)) if path is not None else None  # a refused file builds no network
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = FIDInceptionV3()
        if state is None:  # He init keeps the activations' scale through the 47 layers (PyTorch's default fades them)
            for module in net.modules():
                if isinstance(module, torch.nn.Conv2d | torch.nn.Linear):
                    torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    if state is not None:
        try:
            net.net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise BadInput(f"{path}: not pytorch-fid's Inception weights ({str(exc).splitlines()[0]})",
                           hint=f"run `stylekit download {INCEPTION_WEIGHTS}`") from None
    if logits:
        # The Inception score reads the 1008-way logits without the output bias, as the original TF code
        # (NVlabs: no_output_bias=True).
        torch.nn.init.zeros_(net.net.fc.bias)
        net.logits = True
    else:
        net.net.fc = torch.nn.Identity()  # FID/KID read the 2048-d pool features only
    return net.to(device).eval().requires_grad_(False)


def tf1_resize_bilinear(x: torch.Tensor, size: int = INCEPTION_SIZE) -> torch.Tensor:
    """TF1 `ResizeBilinear` (align_corners=False, no half-pixel centres) of [N,C,H,W] to size x size.

    Output pixel j samples input coordinate j * in / out (edges clamped): the resize at the head of the
    TF FID graph, which clean-fid's TorchScript Inception performs internally for legacy_tensorflow.
    Done as a shifted affine grid + bilinear grid_sample: with align_corners=False a grid shift of
    1/in - 1/out turns grid_sample's half-pixel sampling into TF1's.
    """
    n, c, h, w = x.shape
    theta = torch.zeros(n, 2, 3, dtype=torch.float32, device=x.device)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = 1.0 / w - 1.0 / size
    theta[:, 1, 2] = 1.0 / h - 1.0 / size
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
    return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)


class InceptionFeatures(torch.nn.Module):
    """clean-fid's per-mode feature model on the pytorch-fid network: [N,3,H,W] in [0,255] -> [N,2048] (or logits)."""

    def __init__(self, net: torch.nn.Module, mode: str) -> None:
        super().__init__()
        self.net = net
        self.mode = check_mode(mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if self.mode == "legacy_pytorch":  # clean-fid's pytorch_inception: x / 255, then pytorch-fid's 2x - 1
            x = 2 * (x / 255) - 1
        else:  # clean-fid's TorchScript: (x - 128) / 128, after its TF1 resize for legacy_tensorflow
            if self.mode == "legacy_tensorflow":
                x = tf1_resize_bilinear(x)
            elif x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
                raise BadInput(f"FID Inception input is {tuple(x.shape[-2:])}, expected 299x299 for --mode {self.mode}")
            x = (x - 128) / 128
        return self.net(x)


def _identity(path: Path) -> str:

    return file_identity(path)


# ----------------------------------------------------------------------------------------------
# Precomputed reference statistics ("stats:NAME/RES[/SPLIT]")


@dataclass
class RefStats:
    name: str
    res: int
    split: str
    mode: str

    @property
    def label(self) -> str:
        return f"stats:{self.name}/{self.res}/{self.split}"

    def filename(self, kid: bool = False) -> str:
        return f"{self.name}_{self.mode}_{self.split}_{self.res}{'_kid' if kid else ''}.npz".lower()


CUSTOM_SPLIT = "custom"  # clean-fid's split name for statistics made with make_custom_stats


def stats_dir() -> Path:
    """Where reference statistics live: $STYLEKIT_HOME/stats (clean-fid's hosted ones and `stylekit stats` ones)."""

    return stylekit_home() / "stats"


def parse_stats_spec(spec: str, mode: str) -> RefStats | None:
    """'stats:ffhq/1024/trainval70k' -> RefStats; None when `spec` is not a stats name.

    A NAME/RES that clean-fid does not host names statistics made by `stylekit stats` (split
    "custom"); they must exist already (MissingResource with the command that makes them).
    """
    if not spec.startswith("stats:"):
        return None
    m = re.fullmatch(r"stats:([a-z0-9_]+)/(\d+)(?:/([a-z0-9_]+))?", spec.strip().lower())
    known = ", ".join(f"stats:{n}/{r}/{'|'.join(s)}" for (n, r), s in KNOWN_STATS.items())
    if not m:
        raise BadInput(f"bad statistics name '{spec}'", hint=f"use stats:NAME/RES[/SPLIT], one of {known}, or your own from `stylekit stats`")
    name, res, split = m.group(1), int(m.group(2)), m.group(3)
    splits = KNOWN_STATS.get((name, res))
    if splits is not None and split is not None and split not in splits:
        raise BadInput(f"clean-fid has no statistics '{spec}'", hint=f"known: {known}")
    if splits is not None:
        return RefStats(name, res, split or splits[0], check_mode(mode))
    ref = RefStats(name, res, CUSTOM_SPLIT, check_mode(mode))
    if split not in (None, CUSTOM_SPLIT) or not (stats_dir() / ref.filename()).is_file():
        hosted = any(n == name for n, _ in KNOWN_STATS)
        what = f"clean-fid has no statistics '{spec}'" if hosted else f"no statistics '{spec}' (mode {mode}) in {stats_dir()}"
        make = f"stylekit stats DATA --name {name} --size {res}" + (f" --mode {mode}" if mode != "clean" else "")
        raise MissingResource(what, fetch_command=make, hint=f"make them from your images: {make} (clean-fid hosts {known})")
    return ref


def load_ref_stats(ref: RefStats, kid: bool = False) -> dict[str, np.ndarray]:
    """The .npz of clean-fid's hosted statistics, cached in $STYLEKIT_HOME/stats (never site-packages)."""

    path = stats_dir() / ref.filename(kid)
    url = f"{STATS_URL}/{ref.filename(kid)}"
    if not path.is_file() and ref.split == CUSTOM_SPLIT:
        raise MissingResource(f"{path} is missing (statistics {ref.label})",
                              fetch_command=f"stylekit stats DATA --name {ref.name} --size {ref.res} --fresh")
    if not path.is_file():
        fetch = f"curl -L --create-dirs -o {path} {url}"
        if offline():
            raise MissingResource(f"reference statistics {ref.label} ({'KID features' if kid else 'FID'}) are not cached", fetch_command=fetch)
        from stylekit.data.http import fetch_url

        try:
            fetch_url(url, path, progress=f"statistics {ref.label}")
        except MissingResource as exc:
            raise MissingResource(f"cannot download {ref.label}: {exc.message}", fetch_command=fetch) from None
    try:
        with open_regular(path, "statistics file") as fh, np.load(fh, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: unreadable statistics file ({exc})", hint="delete it and run again") from None


def fid_warning(n: int, label: str) -> str | None:
    if n < FID_WARN_BELOW:
        return (f"{label} has {n} images (< {FID_WARN_BELOW}): the 2048-d Inception covariance is singular "
                f"and FID is biased upwards at this size; compare FIDs only at equal set sizes")
    return None
