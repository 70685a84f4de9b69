"""Registry of every pretrained artifact stylekit uses: name -> URLs, checksum, file name, licence.

Commands take a registry name (`--network ffhq-256`), a local file, an `https://` URL or a Hugging Face
hub id (`hf://OWNER/REPO[@REVISION]/PATH`). `weights_path` turns any of them into a verified local path
(the one place a weights/network spec becomes a file, so every option accepts all four): local files
are used as they are; names are looked up in the cache ($STYLEKIT_HOME/weights, default
~/.cache/stylekit/weights) and fetched on first use unless STYLEKIT_OFFLINE=1. When a file can't be had
the error is exit 3 with `stylekit download NAME`. URLs and hub ids are fetched once into
weights/url/ and weights/hub/, their sha256 recorded in weights/sources.json on first download and
checked on every later use (see `ensure_remote`). Whatever the source, the caller then reads the file
like a local one (restricted unpickler, weights_only, safetensors): nothing in it is executed.

Checksums: where a sha256 is published it is pinned here (the Hugging Face hub lists each LFS file's
sha256; pytorch-fid's Inception file carries the first 8 hex digits in its name, and its full sha256 is
quoted identically by independent projects), as is a sha256 prefix (torchvision's `-<8 hex>.pth` names).
NVIDIA publishes none for its files, so those entries use trust-on-first-use: the first successful
download records its sha256 in weights/checksums.json and every later load or re-download must match
it (docs/weights.md).
This module must stay importable without torch: it only moves and verifies bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from stylekit.data.http import DownloadError, check_reachable, checksum_ok, fetch_url, sha256_file
from stylekit.errors import BadInput, MissingResource
from stylekit.home import stylekit_home
from stylekit.io.atomic import write_json_atomic
from stylekit.io.console import get_console
from stylekit.io.rundir import UNLOCKABLE
from stylekit.offline import offline

_NV = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained"
_HF_CLIP_B32 = "https://huggingface.co/timm/vit_base_patch32_clip_224.openai"
_NV_LICENCE = (
    "NVIDIA Source Code License for StyleGAN2-ADA: non-commercial research and evaluation only"
)


@dataclass(frozen=True)
class WeightSpec:
    """One downloadable artifact. `urls` are mirrors tried in order; `size_bytes` is approximate."""

    name: str
    urls: tuple[str, ...]
    sha256: str | None
    filename: str
    licence: str
    description: str
    size_bytes: int | None = None
    sha256_prefix: str | None = None
    format: str = "file"
    family: str = "other"
    resolution: int | None = None  # networks: the output image side in pixels

    @property
    def checksum_policy(self) -> str:
        if self.sha256:
            return "pinned sha256"
        if self.sha256_prefix:
            return "pinned sha256 prefix + recorded on first download"
        return "recorded on first download"

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["urls"] = list(self.urls)
        doc["checksum_policy"] = self.checksum_policy
        return doc


# Families, in the order `download --list` shows them (registry_groups).
FAMILY_ADA = "StyleGAN2-ADA networks (NVlabs release)"
FAMILY_TRANSFER = "StyleGAN2 transfer-learning sources (NVlabs)"
FAMILY_STYLEGAN3 = "StyleGAN3 networks (NVlabs release)"
FAMILY_BACKBONES = "ImageNet backbones (torchvision)"
FAMILY_METRICS = "metric and feature networks"
FAMILY_FACES = "face detection"
FAMILY_OTHER = "other"
FAMILIES = (FAMILY_ADA, FAMILY_TRANSFER, FAMILY_STYLEGAN3, FAMILY_METRICS, FAMILY_BACKBONES, FAMILY_FACES, FAMILY_OTHER)

# Sizes of the NVlabs pickles are estimates: fp32 bytes of G + G_ema + D built with the network's
# config (channel_base 32768 or 16384 for paper256, channel_max 512), which the pickle exceeds by a few
# hundred kB of structure. NVIDIA publishes no sizes or checksums.
_MB = 1_000_000


def _nv_pkl(name: str, path: str, description: str, size_bytes: int | None = None, *, resolution: int,
            data_terms: str = "FFHQ/CelebA-HQ/LSUN training data have their own terms",
            family: str = FAMILY_TRANSFER) -> WeightSpec:
    return WeightSpec(
        name=name,
        urls=(f"{_NV}/{path}",),
        sha256=None,
        filename=path.rsplit("/", 1)[-1],
        licence=f"{_NV_LICENCE}; {data_terms}",
        description=description,
        size_bytes=size_bytes,
        format="nvlabs-pkl",
        family=family,
        resolution=resolution,
    )


def _nv_ada(name: str, resolution: int, size_mb: int, description: str, data_terms: str) -> WeightSpec:
    """One of the networks the stylegan2-ada-pytorch README lists under pretrained/ (NAME.pkl)."""
    return _nv_pkl(name, f"{name}.pkl", description, size_mb * _MB, resolution=resolution, data_terms=data_terms,
                   family=FAMILY_ADA)


_NV3 = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files"
_NV3_LICENCE = "NVIDIA Source Code License for StyleGAN3: non-commercial research and evaluation only"
_NV3_DATA = {
    "ffhq": ("FFHQ", "FFHQ data: CC BY-NC-SA 4.0"),
    "ffhqu": ("FFHQ-U (unaligned FFHQ)", "FFHQ data: CC BY-NC-SA 4.0"),
    "metfaces": ("MetFaces", "MetFaces data: CC BY-NC 2.0 (images: The Met open access)"),
    "metfacesu": ("MetFaces-U (unaligned MetFaces)", "MetFaces data: CC BY-NC 2.0 (images: The Met open access)"),
    "afhqv2": ("AFHQv2 (cats, dogs, wild animals)", "AFHQv2 data: CC BY-NC 4.0 (NAVER)"),
}


def _nv_sg3(config: str, data: str, resolution: int, size_mb: int) -> WeightSpec:
    """One of the networks the NVlabs/stylegan3 README lists (stylegan3-{t,r}-{data}-{res}x{res}.pkl on NGC).
    T: translation-equivariant; R: translation- and rotation-equivariant. Sizes estimated as above: G + G_ema
    (channel_base 32768, doubled for R; 16384 for the 256 px FFHQ-U networks, as their configs.md row) + D."""
    filename = f"stylegan3-{config}-{data}-{resolution}x{resolution}.pkl"
    dataset, terms = _NV3_DATA[data]
    kind = "T (translation-equivariant)" if config == "t" else "R (rotation-equivariant)"
    return WeightSpec(
        name=f"stylegan3-{config}-{data}-{resolution}",
        urls=(f"{_NV3}/{filename}",),
        sha256=None,
        filename=filename,
        licence=f"{_NV3_LICENCE}; {terms}",
        description=f"StyleGAN3-{kind} {dataset} {resolution}x{resolution}: NVlabs {filename}",
        size_bytes=size_mb * _MB,
        format="nvlabs-pkl",
        family=FAMILY_STYLEGAN3,
        resolution=resolution,
    )


def _torchvision(name: str, filename: str, size_bytes: int, description: str) -> WeightSpec:
    """A torchvision ImageNet state dict; torchvision names files <arch>-<first 8 hex of sha256>.pth."""
    return WeightSpec(
        name=name,
        urls=(f"https://download.pytorch.org/models/{filename}",),
        sha256=None,
        sha256_prefix=filename.rsplit("-", 1)[1].split(".")[0],
        filename=filename,
        licence="torchvision (BSD-3-Clause); trained on ImageNet, whose terms allow non-commercial research use",
        description=f"{description} (torchvision state dict)",
        size_bytes=size_bytes,
        format="torchvision-state-dict",
        family=FAMILY_BACKBONES,
    )


_SPECS = [
    _torchvision("vgg16", "vgg16-397923af.pth", 553_433_881, "VGG16 ImageNet classifier (IMAGENET1K_V1): LPIPS, Image2StyleGAN loss"),
    _torchvision("vgg19", "vgg19-dcbb9e9d.pth", 574_673_361, "VGG19 ImageNet classifier (IMAGENET1K_V1): Gatys style transfer, Gram metrics"),
    _torchvision("resnet18", "resnet18-f37072fd.pth", 46_830_571, "ResNet-18 ImageNet classifier: train-classifier backbone"),
    _torchvision("resnet34", "resnet34-b627a593.pth", 87_319_819, "ResNet-34 ImageNet classifier: train-classifier backbone"),
    _torchvision("resnet50", "resnet50-11ad3fa6.pth", 102_540_417, "ResNet-50 ImageNet classifier (IMAGENET1K_V2): train-classifier backbone"),
    _torchvision("efficientnet_b0", "efficientnet_b0_rwightman-7f5810bc.pth", 21_444_401, "EfficientNet-B0 ImageNet classifier: train-classifier backbone"),
    _torchvision("efficientnet_b1", "efficientnet_b1_rwightman-bac287d4.pth", 31_598_277, "EfficientNet-B1 ImageNet classifier: train-classifier backbone"),
    _torchvision("efficientnet_b2", "efficientnet_b2_rwightman-c35c1473.pth", 36_882_761, "EfficientNet-B2 ImageNet classifier: train-classifier backbone"),
    _torchvision("efficientnet_b3", "efficientnet_b3_rwightman-b3899882.pth", 49_475_213, "EfficientNet-B3 ImageNet classifier: train-classifier backbone"),
    _torchvision("vgg16_bn", "vgg16_bn-6c64b313.pth", 553_507_836, "VGG16-BN ImageNet classifier: train-classifier backbone"),
    _torchvision("vit_b_16", "vit_b_16-c867db91.pth", 346_328_529, "ViT-B/16 ImageNet classifier: train-classifier backbone"),
    _torchvision("convnext_tiny", "convnext_tiny-983f1562.pth", 114_419_989, "ConvNeXt-Tiny ImageNet classifier: train-classifier backbone"),
    WeightSpec(
        name="inception-fid",
        urls=(
            "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
            "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
        ),
        sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
        sha256_prefix="6726825d",
        filename="pt_inception-2015-12-05-6726825d.pth",
        licence="pytorch-fid (Apache-2.0); weights ported from TensorFlow's Inception-v3 2015-12-05 graph (Apache-2.0)",
        description="FID/KID Inception-v3 feature extractor: pytorch-fid's state dict of the TF 2015-12-05 graph "
        "(the network clean-fid builds for legacy_pytorch; loaded with weights_only=True)",
        size_bytes=95_628_359,
        format="torch-state-dict",
        family=FAMILY_METRICS,
    ),
    WeightSpec(
        # NVlabs' metrics/vgg16.pt holds the same metric as TorchScript, which stylekit never executes;
        # LPIPS = registry vgg16 + these per-channel weights (see stylekit/nets/lpips.py).
        name="lpips-vgg16",
        urls=("https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth",),
        sha256=None,
        filename="vgg.pth",
        licence="LPIPS by Zhang et al. (BSD-2-Clause)",
        description="LPIPS v0.1 linear-layer weights for VGG16 (with registry vgg16: the NVlabs projector distance); "
        "also shipped inside the lpips package",
        format="torch-state-dict",
        family=FAMILY_METRICS,
    ),
    WeightSpec(
        name="clip-vit-b-32",
        urls=(
            f"{_HF_CLIP_B32}/resolve/a6f597a30f7b82c51704746581f9a4e41421e878/open_clip_model.safetensors",
            f"{_HF_CLIP_B32}/resolve/main/open_clip_model.safetensors",
        ),
        sha256="e6d1bd7789aa45192b3bf90570a789b478bae1b74ebcce7eddd908e83a2b7c31",
        filename="open_clip_model.safetensors",
        licence="OpenAI CLIP weights (MIT); safetensors conversion by timm on the Hugging Face hub (repo marked Apache-2.0)",
        description="CLIP ViT-B/32, OpenAI weights as safetensors: the file open_clip loads for 'ViT-B-32' "
        "pretrained='openai' (hf-hub timm/vit_base_patch32_clip_224.openai; QuickGELU)",
        size_bytes=605_143_284,
        format="open_clip-safetensors",
        family=FAMILY_METRICS,
    ),
    WeightSpec(
        # biubug6/Pytorch_Retinaface's release, re-hosted on GitHub by facexlib and CodeFormer (no sha256
        # published anywhere: recorded on first download). stylekit/nets/retinaface.py builds the network.
        name="retinaface-mobilenet0.25",
        urls=(
            "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_mobilenet0.25_Final.pth",
            "https://github.com/sczhou/CodeFormer/releases/download/v0.1.0/detection_mobilenet0.25_Final.pth",
        ),
        sha256=None,
        filename="detection_mobilenet0.25_Final.pth",
        licence="Pytorch_Retinaface by biubug6 (MIT); trained on WIDER FACE (research use)",
        description="RetinaFace MobileNet-0.25 face detector with 5 landmarks: prepare/invert --align ffhq",
        size_bytes=1_789_735,
        format="torch-state-dict",
        family=FAMILY_FACES,
    ),
    # The networks the NVlabs/stylegan2-ada-pytorch README lists under pretrained/ (file names as there).
    _nv_ada("ffhq", 1024, 381, "StyleGAN2 FFHQ 1024x1024 (original StyleGAN2 network, converted): NVlabs ffhq.pkl",
            "FFHQ data: CC BY-NC-SA 4.0"),
    _nv_ada("metfaces", 1024, 381, "StyleGAN2-ADA MetFaces 1024x1024 (art portraits; transfer learning from FFHQ "
            "with ADA): NVlabs metfaces.pkl; blends with ffhq-1024", "MetFaces data: CC BY-NC 2.0 (images: The Met open access)"),
    _nv_ada("afhqcat", 512, 364, "StyleGAN2-ADA AFHQ Cat 512x512 (from scratch with ADA): NVlabs afhqcat.pkl",
            "AFHQ data: CC BY-NC 4.0"),
    _nv_ada("afhqdog", 512, 364, "StyleGAN2-ADA AFHQ Dog 512x512 (from scratch with ADA): NVlabs afhqdog.pkl",
            "AFHQ data: CC BY-NC 4.0"),
    _nv_ada("afhqwild", 512, 364, "StyleGAN2-ADA AFHQ Wild 512x512 (from scratch with ADA): NVlabs afhqwild.pkl",
            "AFHQ data: CC BY-NC 4.0"),
    _nv_ada("brecahad", 512, 364, "StyleGAN2-ADA BreCaHAD 512x512 (histopathology, from scratch with ADA): NVlabs brecahad.pkl",
            "BreCaHAD training data have their own terms"),
    _nv_ada("cifar10", 32, 257, "StyleGAN2-ADA class-conditional CIFAR-10 32x32 (10 classes: pass --class): NVlabs cifar10.pkl",
            "CIFAR-10 training data have their own terms"),
    # The transfer-learning sources of train.py --resume (pretrained/transfer-learning-source-nets/).
    _nv_pkl("ffhq-256", "transfer-learning-source-nets/ffhq-res256-mirror-paper256-noaug.pkl", "StyleGAN2 FFHQ 256x256 (paper256 config, x-flips, no aug): NVlabs transfer-learning source",
            296 * _MB, resolution=256),
    _nv_pkl("ffhq-512", "transfer-learning-source-nets/ffhq-res512-mirror-stylegan2-noaug.pkl", "StyleGAN2 FFHQ 512x512 (stylegan2 config, x-flips, no aug): NVlabs transfer-learning source",
            364 * _MB, resolution=512),
    _nv_pkl("ffhq-1024", "transfer-learning-source-nets/ffhq-res1024-mirror-stylegan2-noaug.pkl", "StyleGAN2 FFHQ 1024x1024 (stylegan2 config, x-flips, no aug): NVlabs transfer-learning source",
            381 * _MB, resolution=1024),
    _nv_pkl("celebahq-256", "transfer-learning-source-nets/celebahq-res256-mirror-paper256-kimg100000-ada-target0.5.pkl", "StyleGAN2-ADA CelebA-HQ 256x256 (100k kimg, ADA target 0.6->0.5): NVlabs transfer-learning source",
            296 * _MB, resolution=256),
    _nv_pkl("lsundog-256", "transfer-learning-source-nets/lsundog-res256-paper256-kimg100000-noaug.pkl", "StyleGAN2 LSUN Dog 256x256 (100k kimg, no aug): NVlabs transfer-learning source",
            296 * _MB, resolution=256),
    # The StyleGAN3 networks of the NVlabs/stylegan3 README, T and R configs of each.
    *[_nv_sg3(config, data, res, mb[config]) for data, res, mb in (
        ("ffhq", 1024, {"t": 295, "r": 237}), ("ffhqu", 1024, {"t": 295, "r": 237}), ("ffhqu", 256, {"t": 283, "r": 222}),
        ("metfaces", 1024, {"t": 295, "r": 237}), ("metfacesu", 1024, {"t": 295, "r": 237}), ("afhqv2", 512, {"t": 315, "r": 249}),
    ) for config in ("t", "r")],
]

# junyanz's published CycleGAN generators (photo -> painting style; scripts/download_cyclegan_model.sh of
# junyanz/pytorch-CycleGAN-and-pix2pix): plain state dicts of his ResnetGenerator (9 blocks, ngf 64,
# instance norm, no dropout), loaded as data by stylekit.transfer.cyclegan. No checksum is published:
# recorded on first download.
_CYCLEGAN = "efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models"
for _style, _painter in (("monet", "Claude Monet"), ("vangogh", "Vincent van Gogh"), ("ukiyoe", "Ukiyo-e prints"),
                         ("cezanne", "Paul Cezanne")):
    _SPECS.append(WeightSpec(
        name=f"style_{_style}",
        urls=(f"https://{_CYCLEGAN}/style_{_style}.pth",),  # his script fetches it over http; the host serves https
        sha256=None,
        filename=f"style_{_style}.pth",
        licence="pytorch-CycleGAN-and-pix2pix by Zhu, Park et al. (BSD-2-Clause); trained on paintings collected from Wikiart",
        description=f"CycleGAN photo -> {_painter} generator (junyanz ResnetGenerator state dict): "
        "transfer --method cyclegan --model style_" + _style,
        format="junyanz-cyclegan-generator",
    ))

REGISTRY: dict[str, WeightSpec] = {spec.name: spec for spec in _SPECS}

CHECKSUMS_FILE = "checksums.json"


def register(spec: WeightSpec, replace: bool = False) -> WeightSpec:
    """Add an entry (e.g. a library module's extra backbones). An existing name is kept unless `replace`."""
    if not isinstance(spec, WeightSpec):
        raise TypeError(f"register() needs a WeightSpec, got {type(spec).__name__}")
    if replace or spec.name not in REGISTRY:
        REGISTRY[spec.name] = spec
    return REGISTRY[spec.name]




def weights_dir() -> Path:
    return stylekit_home() / "weights"


def registry_names() -> list[str]:
    return list(REGISTRY)


def registry_name_of(url: str) -> str | None:
    """The registry name whose download URL (any mirror) is exactly `url`, if there is one."""
    for spec in REGISTRY.values():
        if url in spec.urls:
            return spec.name
    return None


def registry_groups() -> dict[str, list[WeightSpec]]:
    """The registry grouped by family, families in FAMILIES order (unknown ones after), entries in registry order."""
    groups: dict[str, list[WeightSpec]] = {family: [] for family in FAMILIES}
    for spec in REGISTRY.values():
        groups.setdefault(spec.family, []).append(spec)
    return {family: specs for family, specs in groups.items() if specs}


def get_spec(name: str) -> WeightSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise BadInput(f"unknown weights name '{name}'", hint=f"known names: {', '.join(REGISTRY)}; or give a path to a local file, an https:// URL or hf://OWNER/REPO/FILE") from None


def mirror_urls(spec: WeightSpec) -> list[str]:
    """The URLs tried in order: $STYLEKIT_MIRROR/<filename> first when set (a site-local mirror), then the registry's."""
    urls = []
    for base in (os.environ.get("STYLEKIT_MIRROR") or "").split(","):
        if base.strip():
            urls.append(f"{base.strip().rstrip('/')}/{spec.filename}")
    return urls + list(spec.urls)


# --- recorded checksums (trust on first use) -------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock: torchrun ranks fetching the same file wait for the first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; downloads still land atomically.
            yield
            return

        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        except OSError as exc:  # a filesystem without locks: ranks may fetch twice; each lands atomically
            if exc.errno not in UNLOCKABLE:
                raise
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def read_checksums() -> dict[str, dict[str, Any]]:
    path = weights_dir() / CHECKSUMS_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadInput(f"{path} is not valid JSON", hint="fix or delete it (recorded checksums are then re-recorded on the next download)") from None
    entries = doc.get("entries", {}) if isinstance(doc, dict) else {}
    return entries if isinstance(entries, dict) else {}


def _record(name: str, entry: dict[str, Any]) -> None:

    folder = weights_dir()
    with _locked(folder / f".{CHECKSUMS_FILE}.lock"):
        entries = read_checksums()
        entries[name] = {**entries.get(name, {}), **entry}
        write_json_atomic(folder / CHECKSUMS_FILE, {"version": 1, "entries": entries})


def _expected(spec: WeightSpec, recorded: dict[str, Any] | None) -> str | None:
    """The full sha256 a file must have: pinned in the registry, else the one recorded on first use."""
    if spec.sha256:
        return spec.sha256.lower()
    if recorded and isinstance(recorded.get("sha256"), str):
        return recorded["sha256"].lower()
    return None


@dataclass
class WeightsResult:
    """What `ensure_weights` did: where the file is, its sha256 and how it was trusted."""

    name: str
    path: Path
    sha256: str
    size: int
    skipped: bool
    trust: str
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["path"] = str(self.path)
        return doc


def _verify_file(spec: WeightSpec, path: Path, in_cache: bool) -> WeightsResult:
    """Check a file already on disk against the pinned/recorded checksum (recording it if none yet)."""

    recorded = read_checksums().get(spec.name)
    expected = _expected(spec, recorded)
    st = path.stat()
    stamp_ok = (
        in_cache
        and recorded is not None
        and expected is not None
        and recorded.get("sha256") == expected
        and recorded.get("size") == st.st_size
        and recorded.get("mtime_ns") == st.st_mtime_ns
    )
    digest = expected if stamp_ok and expected else sha256_file(path)
    if not checksum_ok(digest, expected, spec.sha256_prefix):
        raise MissingResource(
            f"{path} fails its checksum check for '{spec.name}' (sha256 {digest[:16]}..., expected "
            f"{(expected or spec.sha256_prefix or '')[:16]}...): it is corrupt or not the registry file",
            fetch_command=f"stylekit download {spec.name} --fresh",
        )
    trust = "pinned sha256" if spec.sha256 else ("recorded on first download" if expected else "recorded now (first use)")
    if expected is None:
        get_console().warn(f"{spec.name}: no published checksum; recording sha256 {digest[:16]}... of {path} (trust on first use)")
    if in_cache and not stamp_ok:
        _record(spec.name, {"filename": spec.filename, "sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                            **({} if recorded else {"recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "source": str(path)})})
    elif expected is None:
        _record(spec.name, {"filename": spec.filename, "sha256": digest, "size": st.st_size,
                            "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "source": str(path)})
    return WeightsResult(spec.name, path, digest, st.st_size, True, trust)


def ensure_weights(
    name: str,
    force: bool = False,
    dest_dir: str | os.PathLike[str] | None = None,
    *,
    timeout: float = 60.0,
    retries: int = 3,
    backoff: float = 1.0,
) -> WeightsResult:
    """Make registry artifact `name` present and verified in the cache (or `dest_dir`); fetch if needed.

    An existing verified file is kept (skipped=True). `force` downloads again and, for entries without
    a published checksum, replaces the recorded one. Mirrors are tried in order; a checksum mismatch
    discards the bytes and moves on to the next mirror.
    """

    spec = get_spec(name)
    folder = Path(dest_dir) if dest_dir is not None else weights_dir()
    in_cache = dest_dir is None or folder.resolve() == weights_dir().resolve()
    dest = folder / spec.filename
    fetch = f"stylekit download {name}"
    with _locked(folder / f".{spec.filename}.lock"):
        if dest.is_file() and not force:
            try:
                return _verify_file(spec, dest, in_cache)
            except MissingResource as exc:
                if offline():
                    raise
                get_console().warn(f"{exc.message}; downloading it again")
                dest.unlink()
        if offline():
            raise MissingResource(
                f"weights '{name}' are not in the cache ({dest}) and STYLEKIT_OFFLINE=1 forbids downloading; "
                f"run `{fetch}` on a machine with network access and copy {spec.filename} into {folder}",
                fetch_command=fetch,
            )
        recorded = read_checksums().get(name)
        expected = spec.sha256 or (None if force else _expected(spec, recorded))
        errors: list[str] = []
        statuses: list[int] = []  # HTTP statuses among the failures (none: the network did not answer)
        mismatch: DownloadError | None = None
        for url in mirror_urls(spec):
            try:
                fetched = fetch_url(url, dest, sha256=expected, sha256_prefix=spec.sha256_prefix, timeout=timeout,
                                    retries=retries, backoff=backoff, progress=f"{name}", expected_size=spec.size_bytes)
            except DownloadError as exc:
                errors.append(exc.message)
                if exc.status is not None:
                    statuses.append(exc.status)
                if exc.reason == "checksum":
                    mismatch = exc
                get_console().warn(exc.message)
                continue
            st = dest.stat()
            if spec.sha256:
                trust = "pinned sha256"
            elif expected:
                trust = "recorded on first download"
            else:
                trust = "recorded now (first download)"
            entry = {"filename": spec.filename, "sha256": fetched.sha256, "size": st.st_size, "url": url}
            if not expected:
                entry["recorded_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            if in_cache:
                entry["mtime_ns"] = st.st_mtime_ns
            if in_cache or not expected:
                _record(name, entry)
            return WeightsResult(name, dest, fetched.sha256, st.st_size, False, trust, url)
        if mismatch is not None and not spec.sha256 and expected:
            raise MissingResource(
                f"'{name}': the downloaded file differs from the sha256 recorded on first download "
                f"({expected[:16]}... in {weights_dir() / CHECKSUMS_FILE}); nothing was kept",
                hint=f"if the upstream file changed legitimately, trust the new one with `{fetch} --fresh`",
            )
        raise MissingResource(f"could not download '{name}': " + "; ".join(errors), fetch_command=fetch,
                              hint=_failed_download_hint(spec, folder, statuses))


def _failed_download_hint(spec: WeightSpec, folder: Path, statuses: list[int]) -> str:
    """What to do when every URL failed; repeating the command that just failed would not help."""
    why = (f"the server answered HTTP {', '.join(map(str, sorted(set(statuses))))}" if statuses
           else "the network is unreachable from here")
    return (f"{why}: set STYLEKIT_MIRROR to a site-local mirror that holds {spec.filename}, or fetch it where the "
            f"network works and copy it into {folder}, or pass a local weights file instead of the name '{spec.name}'")


def download_weights(name: str, force: bool = False, dest_dir: str | os.PathLike[str] | None = None) -> Path:
    """Fetch registry artifact `name` (see ensure_weights) and return its path."""
    return ensure_weights(name, force=force, dest_dir=dest_dir).path


# --- URLs and Hugging Face hub ids -------------------------------------------------------------

HUB_SCHEME = "hf://"
SOURCES_FILE = "sources.json"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
_HUB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def is_remote(text: str | os.PathLike[str]) -> bool:
    """True for an http(s) URL or an hf:// hub id (decided by the text alone, nothing is fetched)."""
    return isinstance(text, str) and text.lower().startswith(("https://", "http://", HUB_SCHEME))


_FOLDED_REMOTE = re.compile(r"^(https?|hf):/(?!/)", re.IGNORECASE)


def as_source(value: str | os.PathLike[str]) -> str:
    """The text of a weights option. A value that went through pathlib (an option or config field typed
    as a path) has `https://h/f` folded into `https:/h/f`; when no such local path exists it is given
    back as the URL it was."""
    text = os.fspath(value)
    if _FOLDED_REMOTE.match(text) and not os.path.lexists(text):
        return _FOLDED_REMOTE.sub(lambda m: f"{m.group(1)}://", text, count=1)
    return text


@dataclass(frozen=True)
class RemoteSource:
    """A URL or hub id and where its file lives in the cache."""

    source: str  # as the user wrote it
    key: str  # its entry in sources.json
    kind: str  # "url" | "hub"
    url: str  # the address fetched (hub: the file's resolve URL on the hub, HF_ENDPOINT if set; for messages)
    path: Path  # the cached file
    repo_id: str = ""
    filename: str = ""
    revision: str = "main"

    @property
    def fetch_command(self) -> str:
        """A command that puts the file where stylekit looks for it (on a machine with network access)."""
        if self.kind == "hub":
            return f"hf download {self.repo_id} {self.filename} --revision {self.revision} --local-dir {_hub_dir(self)}"
        return f"curl -L --create-dirs -o {self.path} {self.url}"


def _hub_dir(src: RemoteSource) -> Path:
    return weights_dir() / "hub" / src.repo_id / src.revision


def _cache_name(name: str) -> str:
    name = _SAFE_FILE_CHARS.sub("_", urllib.parse.unquote(name)).lstrip(".")
    return name[-120:] or "download"


def parse_remote(text: str) -> RemoteSource:
    """Check a URL / hub id and place it in the cache; BadInput (exit 2) for a malformed one.

    https:// everywhere; http:// only for a loopback host (a local test server or site proxy on this
    machine), since a plain-HTTP download from elsewhere could be altered on the way.
    """
    if text.lower().startswith(HUB_SCHEME):
        return _parse_hub(text)
    parts = urllib.parse.urlsplit(text)
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if not host:
        raise BadInput(f"'{text}' is not a usable URL (no host)", hint="e.g. https://host/path/network.pkl")
    if scheme == "http" and host not in LOOPBACK_HOSTS:
        raise BadInput(f"{text}: plain http:// is refused (the download could be altered on the way)",
                       hint="use the https:// address of the same file")
    base = parts.path.rsplit("/", 1)[-1]
    folder = weights_dir() / "url" / _cache_name(host) / hashlib.sha256(text.encode()).hexdigest()[:16]
    return RemoteSource(text, text, "url", text, folder / _cache_name(base))


def _parse_hub(text: str) -> RemoteSource:
    usage = "give hf://OWNER/REPO/PATH or hf://OWNER/REPO@REVISION/PATH, e.g. hf://someone/stylegan2-toons/network.pkl"
    rest = text[len(HUB_SCHEME):]
    pieces = rest.split("/")
    if len(pieces) < 3:
        raise BadInput(f"'{text}' is not a hub id: it needs an owner, a repository and a file", hint=usage)
    owner, repo, *file_parts = pieces
    repo, _, revision = repo.partition("@")
    revision = revision or "main"
    for part, what in ((owner, "owner"), (repo, "repository"), (revision, "revision")):
        if not _HUB_NAME.fullmatch(part) or ".." in part:
            raise BadInput(f"'{text}': bad hub {what} '{part}'", hint=usage)
    if any(p in ("", ".", "..") for p in file_parts):
        raise BadInput(f"'{text}': bad file path in the repository", hint=usage)
    filename = "/".join(file_parts)
    repo_id = f"{owner}/{repo}"
    key = f"{HUB_SCHEME}{repo_id}@{revision}/{filename}"
    endpoint = (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    url = f"{endpoint}/{repo_id}/resolve/{revision}/{filename}"
    path = weights_dir() / "hub" / owner / repo / revision / Path(*file_parts)
    return RemoteSource(text, key, "hub", url, path, repo_id, filename, revision)


def read_sources() -> dict[str, dict[str, Any]]:
    """sources.json: per URL / hub id, the sha256 (and size, time) recorded on first download."""
    path = weights_dir() / SOURCES_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadInput(f"{path} is not valid JSON", hint="fix or delete it (checksums of URL downloads are then re-recorded on next use)") from None
    entries = doc.get("entries", {}) if isinstance(doc, dict) else {}
    return entries if isinstance(entries, dict) else {}


def _record_source(key: str, entry: dict[str, Any] | None) -> None:
    """Set (or, with None, drop) the entry of one source in sources.json."""

    folder = weights_dir()
    with _locked(folder / f".{SOURCES_FILE}.lock"):
        entries = read_sources()
        if entry is None:
            entries.pop(key, None)
        else:
            entries[key] = {**entries.get(key, {}), **entry}
        write_json_atomic(folder / SOURCES_FILE, {"version": 1, "entries": entries})


def forget_source(text: str) -> None:
    """Delete the cached file of a URL / hub id and its recorded sha256: the next use trusts what it fetches."""
    src = parse_remote(text)
    src.path.unlink(missing_ok=True)
    _record_source(src.key, None)


def _remote_offline(src: RemoteSource) -> str | None:
    """The variable that forbids fetching `src`, if one is set."""
    if offline():
        return "STYLEKIT_OFFLINE=1"
    hub_offline = (os.environ.get("HF_HUB_OFFLINE") or "").strip().lower() in ("1", "true", "yes", "on")
    return "HF_HUB_OFFLINE=1" if src.kind == "hub" and hub_offline else None


def _refetch_hint(src: RemoteSource) -> str:
    ledger = weights_dir() / SOURCES_FILE
    return (f"delete {src.path} to fetch it again (it must then match the recorded sha256); if the file at {src.url} "
            f"changed legitimately, also delete the entry \"{src.key}\" in {ledger} (or call "
            f"stylekit.weights.forget_source) so that the next download is trusted anew")


def _verify_remote(src: RemoteSource, recorded: dict[str, Any] | None) -> WeightsResult:
    """A cached URL / hub file: its sha256 must be the recorded one (recorded now when there is none)."""

    st = src.path.stat()
    expected = recorded.get("sha256") if recorded and isinstance(recorded.get("sha256"), str) else None
    if expected and recorded and recorded.get("size") == st.st_size and recorded.get("mtime_ns") == st.st_mtime_ns:
        return WeightsResult(src.source, src.path, expected, st.st_size, True, "recorded on first download", src.url)
    digest = sha256_file(src.path)
    if expected is None:
        get_console().warn(f"{src.source}: no sha256 recorded for {src.path}; recording {digest[:16]}... (trust on first use)")
        _record_source(src.key, {"url": src.url, "path": str(src.path), "sha256": digest, "size": st.st_size,
                                 "mtime_ns": st.st_mtime_ns, "recorded_at": _now()})
        return WeightsResult(src.source, src.path, digest, st.st_size, True, "recorded now (first use)", src.url)
    if digest != expected.lower():
        raise MissingResource(
            f"{src.path} (the cached copy of {src.source}) has changed: sha256 {digest[:16]}..., recorded on first "
            f"download {expected[:16]}...; refused",
            hint=_refetch_hint(src),
        )
    _record_source(src.key, {"size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return WeightsResult(src.source, src.path, digest, st.st_size, True, "recorded on first download", src.url)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def ensure_remote(text: str, force: bool = False, *, timeout: float = 60.0, retries: int = 3,
                  backoff: float = 1.0) -> WeightsResult:
    """Make the file of a URL or hub id present and verified in the cache; fetch it on first use.

    The first download records its sha256 in sources.json (trust on first use); every later use checks
    the cached file against it (re-hashing when its size or mtime changed) and refuses a changed file
    (exit 3, naming the URL, the cache path and how to refetch); a re-download must match it too.
    Offline (STYLEKIT_OFFLINE=1, or HF_HUB_OFFLINE=1 for hub ids) an uncached source is exit 3 naming
    the URL and the cache path. `force` fetches again and trusts what arrives.
    """
    src = parse_remote(text)
    src.path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(src.path.parent / f".{src.path.name}.lock"):
        recorded = read_sources().get(src.key)
        if src.path.is_file() and not force:
            return _verify_remote(src, recorded)
        blocker = _remote_offline(src)
        if blocker:
            raise MissingResource(
                f"{src.source} is not in the cache ({src.path}) and {blocker} forbids downloading it"
                + (f" from {src.url}" if src.kind == "hub" else ""),
                fetch_command=src.fetch_command,
                hint=f"run `{src.fetch_command}` on a machine with network access and copy the file to {src.path}, "
                     f"or pass a local file instead",
            )
        expected = None if force else (recorded or {}).get("sha256")
        if src.kind == "hub":
            digest = _fetch_hub(src, force)
        else:
            digest = _fetch_url(src, expected, timeout, retries, backoff)
        st = src.path.stat()
        if expected and digest != expected.lower():
            src.path.unlink(missing_ok=True)
            raise MissingResource(
                f"the file downloaded from {src.url} differs from the sha256 recorded on its first download "
                f"({expected[:16]}..., got {digest[:16]}...); nothing was kept in {src.path.parent}",
                hint=_refetch_hint(src),
            )
        entry = {"url": src.url, "path": str(src.path), "sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        if not expected:
            entry["recorded_at"] = _now()
        _record_source(src.key, entry)
        trust = "recorded on first download" if expected else "recorded now (first download)"
        return WeightsResult(src.source, src.path, digest, st.st_size, False, trust, src.url)


def _fetch_url(src: RemoteSource, expected: str | None, timeout: float, retries: int, backoff: float) -> str:

    try:
        fetched = fetch_url(src.url, src.path, sha256=expected, timeout=timeout, retries=retries, backoff=backoff,
                            progress=src.path.name)
    except DownloadError as exc:
        if exc.reason == "checksum":
            raise MissingResource(
                f"the file downloaded from {src.url} differs from the sha256 recorded on its first download "
                f"({(expected or '')[:16]}...); nothing was kept in {src.path.parent}",
                hint=_refetch_hint(src),
            ) from None
        raise MissingResource(exc.message, fetch_command=src.fetch_command,
                              hint=f"check the URL, or fetch it where the network works and copy it to {src.path}") from None
    return fetched.sha256


def _hub_failure(src: RemoteSource, exc: BaseException) -> str:
    """One line for a huggingface_hub failure: what is missing, else the deepest cause (network errors)."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, GatedRepoError):
        return f"{src.repo_id} is a gated repository: accept its terms on the hub and set HF_TOKEN"
    if isinstance(exc, RepositoryNotFoundError):
        return f"no repository {src.repo_id} (or it is private and HF_TOKEN is not set)"
    if isinstance(exc, RevisionNotFoundError):
        return f"{src.repo_id} has no revision '{src.revision}'"
    if isinstance(exc, EntryNotFoundError) and not isinstance(exc, LocalEntryNotFoundError):
        return f"{src.repo_id} has no file '{src.filename}' at revision '{src.revision}'"
    cause: BaseException = exc
    for _ in range(10):  # huggingface_hub wraps network errors (httpx's wraps the socket's)
        inner = cause.__cause__ or cause.__context__
        if inner is None:
            break
        cause = inner
    first = (str(cause).strip().splitlines() or [""])[0][:300]
    return f"{type(cause).__name__}: {first}" if cause is not exc else f"{type(exc).__name__}: {first}"


def _fetch_hub(src: RemoteSource, force: bool) -> str:
    """Download a hub file with huggingface_hub into the cache (HF_ENDPOINT and HF_TOKEN are honoured)."""

    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils import (
            are_progress_bars_disabled,
            disable_progress_bars,
            enable_progress_bars,
        )
    except ImportError:
        raise MissingResource(f"{src.source} needs the huggingface_hub package", fetch_command="pip install huggingface_hub") from None
    try:  # huggingface_hub retries an unresolvable or refusing host for ~20 s: fail at once instead
        check_reachable(src.url)
    except DownloadError as exc:
        raise MissingResource(f"{src.source}: {exc.message}", fetch_command=src.fetch_command,
                              hint=f"check HF_ENDPOINT and the network, or fetch it where the network works and copy it to {src.path}") from None
    get_console().log(f"downloading {src.source} from the Hugging Face hub into {src.path}")
    quiet = are_progress_bars_disabled()
    disable_progress_bars()  # the library never prints: no tqdm bars, and huggingface_hub's retry warnings
    hub_logger = logging.getLogger("huggingface_hub")  # stay below ERROR (the failure itself is raised)
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    try:
        got = Path(hf_hub_download(src.repo_id, src.filename, revision=src.revision, local_dir=_hub_dir(src), force_download=force,
                                   endpoint=os.environ.get("HF_ENDPOINT") or None))
    except Exception as exc:  # noqa: BLE001 - any hub failure (404, auth, network) is one exit-3 line
        raise MissingResource(f"could not download {src.source} ({src.url}): {_hub_failure(src, exc)}",
                              fetch_command=src.fetch_command,
                              hint=f"check the repository, file and revision (private or gated repositories need "
                                   f"HF_TOKEN), or fetch it where the network works and copy it to {src.path}") from None
    finally:
        hub_logger.setLevel(level)
        if not quiet:
            enable_progress_bars()
    if got.resolve() != src.path.resolve():  # huggingface_hub puts local_dir files at local_dir/PATH
        os.replace(got, src.path)
    return sha256_file(src.path)


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.startswith((".", "~")) or Path(text).suffix != ""


def weights_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A local file as is; a registry name, URL or hub id resolved to its verified cached file (fetched on first use).

    Raises MissingResource (exit 3, with the command that fetches it) when the file is not cached and
    STYLEKIT_OFFLINE=1 or the download fails, or a cached URL / hub file changed; BadInput (exit 2) for
    a name that is none of these.
    """
    text = as_source(name_or_path)
    if is_remote(text):
        name = registry_name_of(text)  # NVlabs' own --network=https://... lines share the registry's cache
        return ensure_weights(name).path if name else ensure_remote(text).path
    candidate = Path(text).expanduser()
    if candidate.is_file():
        return candidate
    if text in REGISTRY:
        return ensure_weights(text).path
    if _looks_like_path(text):
        raise BadInput(f"weights file {text} does not exist", hint=f"give an existing file or a registry name: {', '.join(REGISTRY)}")
    raise BadInput(f"unknown weights name '{text}'", hint=f"known names: {', '.join(REGISTRY)}; or give a path to a local file, an https:// URL or hf://OWNER/REPO/FILE")
