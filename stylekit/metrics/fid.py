"""FID and KID through clean-fid's Inception pipeline, with its pitfalls guarded.

clean-fid supplies the feature model and the per-mode resize/quantisation (`build_resizer`); stylekit
supplies what clean-fid lacks for unattended use:
- the file list: recursive, case-insensitive extensions, zip files, each image validated and a corrupt
  one skipped and reported instead of killing the run (clean-fid's glob misses `.Png` and one bad
  file raises inside its DataLoader);
- the Inception weights come from stylekit's registry (`inception-fid`, verified, in
  $STYLEKIT_HOME) instead of an unchecked download to /tmp; offline without them -> exit 3;
- no DataParallel (it breaks non-default devices), no stats written into site-packages;
- features go through the per-image cache (features.py), so reruns compute nothing.
Images are decoded the way clean-fid decodes them (`convert("RGB")`), so on the same files the
numbers equal `cleanfid.fid.compute_fid` (benchmarks/score.py checks this).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from stylekit.errors import BadInput, MissingResource

MODES = ("clean", "legacy_pytorch", "legacy_tensorflow")
INCEPTION_FILE = "inception-2015-12-05.pt"
PT_INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
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

    `model` injects any callable taking clean-fid's input ([N,3,299,299] floats in [0,255]) and
    returning [N, dim] (tests and benchmarks use a tiny random network); otherwise the real Inception
    is built from `weights` (registry name or path; default `inception-fid`, or the pytorch-fid port
    for legacy_pytorch).
    """

    cleanfid_decode = True

    def __init__(self, mode: str = "clean", device: torch.device | str = "cpu", weights: str | None = None,
                 model: Callable[[torch.Tensor], Any] | None = None, name: str | None = None, dim: int = 2048) -> None:
        self.mode = check_mode(mode)
        self.device = torch.device(device)
        self.dim = dim
        self.preprocess = CleanFidPreprocess(mode)
        self._model = model
        self._path: Path | None = None
        if model is not None:
            self.name = name or "custom"
            self.version = "injected"
        else:
            # Resolve (and verify) the weights now so a missing file fails before any decoding; load
            # the network only when some image is not cached, so a cached rerun never pays for it.
            self._path, self.name = _resolve_inception(mode, weights)
            self.version = f"clean-fid {_cleanfid_version()}"

    @property
    def model(self) -> Callable[[torch.Tensor], Any]:
        if self._model is None:
            assert self._path is not None
            self._model = _load_inception(self.mode, self._path, self.device)
        return self._model

    def __call__(self, batch: torch.Tensor) -> Any:
        return self.model(batch.to(self.device))


def _cleanfid_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("clean-fid")
    except PackageNotFoundError:
        return "unknown"


def _link_dir(target: Path, filename: str) -> Path:
    """A folder holding `filename` -> target, for clean-fid loaders that take a folder."""
    from stylekit.metrics.features import _safe, stylekit_home

    folder = stylekit_home() / "links" / _safe(str(target.resolve()))
    link = folder / filename
    if not link.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{filename}.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target.resolve())
        os.replace(tmp, link)
    return folder


@contextlib.contextmanager
def _local_state_dict(path: Path) -> Iterator[None]:
    """Make clean-fid's pytorch-fid Inception read `path` (weights_only) instead of downloading."""
    import cleanfid.inception_pytorch as ip

    original = ip.load_state_dict_from_url

    def load(url: str, *args: Any, **kwargs: Any) -> Any:
        return torch.load(path, map_location="cpu", weights_only=True)

    ip.load_state_dict_from_url = load
    try:
        yield
    finally:
        ip.load_state_dict_from_url = original


def _resolve_inception(mode: str, weights: str | None) -> tuple[Path, str]:
    """The weights file for `mode` (registry or local) and the extractor name (cache identity)."""
    from stylekit.weights import REGISTRY, weights_path

    if mode == "legacy_pytorch":
        name = weights or "inception-fid-pytorch"
        if name == "inception-fid-pytorch" and name not in REGISTRY:
            raise MissingResource(
                "--mode legacy_pytorch needs pytorch-fid's Inception weights (pt_inception-2015-12-05-6726825d.pth)",
                hint="download it from github.com/mseitzer/pytorch-fid/releases (tag fid_weights) and pass --inception-weights FILE",
            )
        path = weights_path(name)
        return path, "inception-fid-pytorch" if name == "inception-fid-pytorch" else f"inception-pt:{_identity(path)}"
    name = weights or "inception-fid"
    path = weights_path(name)
    return path, "inception-fid" if name == "inception-fid" else f"inception:{_identity(path)}"


def _load_inception(mode: str, path: Path, device: torch.device) -> Callable[[torch.Tensor], Any]:
    if mode == "legacy_pytorch":
        from cleanfid.inception_pytorch import InceptionV3

        try:
            with _local_state_dict(path):
                net = InceptionV3(output_blocks=[3], resize_input=False).to(device).eval()
        except (RuntimeError, KeyError) as exc:
            raise BadInput(f"{path}: not pytorch-fid Inception weights ({str(exc).splitlines()[0]})") from None

        def pt_model(x: torch.Tensor) -> torch.Tensor:
            return net(x / 255)[0].squeeze(-1).squeeze(-1)

        return pt_model
    folder = path.parent if path.name == INCEPTION_FILE else _link_dir(path, INCEPTION_FILE)
    from cleanfid.inception_torchscript import InceptionV3W

    try:
        return InceptionV3W(str(folder), download=False, resize_inside=(mode == "legacy_tensorflow")).to(device).eval()
    except RuntimeError as exc:
        raise BadInput(f"{path}: not the TorchScript FID Inception ({str(exc).splitlines()[0]})",
                       hint="run: stylekit download inception-fid") from None


def _identity(path: Path) -> str:
    from stylekit.metrics.features import file_identity

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


def parse_stats_spec(spec: str, mode: str) -> RefStats | None:
    """'stats:ffhq/1024/trainval70k' -> RefStats; None when `spec` is not a stats name."""
    if not spec.startswith("stats:"):
        return None
    m = re.fullmatch(r"stats:([a-z0-9_]+)/(\d+)(?:/([a-z0-9_]+))?", spec.strip().lower())
    known = ", ".join(f"stats:{n}/{r}/{'|'.join(s)}" for (n, r), s in KNOWN_STATS.items())
    if not m:
        raise BadInput(f"bad statistics name '{spec}'", hint=f"use stats:NAME/RES[/SPLIT], one of {known}")
    name, res, split = m.group(1), int(m.group(2)), m.group(3)
    splits = KNOWN_STATS.get((name, res))
    if splits is None or (split is not None and split not in splits):
        raise BadInput(f"clean-fid has no statistics '{spec}'", hint=f"known: {known}")
    return RefStats(name, res, split or splits[0], check_mode(mode))


def load_ref_stats(ref: RefStats, kid: bool = False) -> dict[str, np.ndarray]:
    """The .npz of clean-fid's hosted statistics, cached in $STYLEKIT_HOME/stats (never site-packages)."""
    from stylekit.metrics.features import stylekit_home
    from stylekit.weights import offline

    path = stylekit_home() / "stats" / ref.filename(kid)
    url = f"{STATS_URL}/{ref.filename(kid)}"
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
        with np.load(path, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: unreadable statistics file ({exc})", hint="delete it and run again") from None


def fid_warning(n: int, label: str) -> str | None:
    if n < FID_WARN_BELOW:
        return (f"{label} has {n} images (< {FID_WARN_BELOW}): the 2048-d Inception covariance is singular "
                f"and FID is biased upwards at this size; compare FIDs only at equal set sizes")
    return None
