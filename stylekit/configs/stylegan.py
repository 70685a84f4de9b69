"""`stylekit generate`, `mix` and `blend-layers`: the options of sampling a StyleGAN2 or StyleGAN3 network (defaults:
NVlabs generate.py / style_mixing.py, Pinkney & Adler's layer swapping)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from stylekit.declare import Config, float_list, int_list, option, require
from stylekit.errors import BadInput

# Parsed list options declare their default as the text a user would type ("0-6"): constructing the config
# parses it, and --help shows it as typed.
SEED_MAX = 2**32 - 1  # z = RandomState(seed).randn: numpy's seed range
MAX_LAYERS = 64  # w layers of a network (18 at 1024 px)
MAX_RES = 8192
MIX_PANEL = "Style mixing"
INTERP_PANEL = "Interpolation"
METRICS_PANEL = "Metrics"


class NoiseMode(StrEnum):
    const = "const"
    random = "random"
    none = "none"


class Space(StrEnum):
    z = "z"
    w = "w"


class Structure(StrEnum):
    finetuned = "finetuned"
    base = "base"


def int_list_or_none(text: str, option: str) -> tuple[int, ...]:
    """Like `int_list`, but '' (or only spaces) means no values."""
    return int_list(text, option) if text.strip() else ()


def xy_pair(text: str, option: str) -> tuple[float, ...]:
    """'X,Y': exactly two numbers."""
    values = float_list(text, option)
    if len(values) != 2:
        raise BadInput(f"{option} '{text}' must be two numbers X,Y", hint=f"e.g. {option} 0.25,-0.1")
    return values


def seed_pair(text: str, option: str) -> tuple[int, ...]:
    """'A,B': exactly two seeds."""
    values = int_list(text, option)
    if len(values) != 2:
        raise BadInput(f"{option} '{text}' must name exactly two seeds", hint=f"e.g. {option} 12,34")
    return values


NETWORK_COVER = ("random:16", "random:stylegan3:16")  # both architectures in every generator command's cover


def network(help: str = "", **decl: Any) -> Any:
    """A generator option: the shared concept, which also takes the random:RES stand-in."""
    return option(help=help or "StyleGAN2 or StyleGAN3 network: registry name (ffhq-256, stylegan3-t-ffhqu-256, ...), NVlabs "
                  ".pkl, rosinality .pt, stylekit .safetensors, a run directory, or random:RES / random:stylegan3:RES "
                  "(a random-init stand-in at RES px, e.g. random:64).",
                  concept="network", cover=NETWORK_COVER, **decl)


def trunc(help: str = "") -> Any:
    return option(help=help, concept="trunc", ge=-1.0, le=2.0, cover=(1.0, 0.7))


def class_index() -> Any:
    """--class: the class of a conditional network's samples."""
    return option(None, "Class index for conditional networks.", flags="--class", ge=0, le=1_000_000, cover=(None,))


def image_batch() -> Any:
    """--batch of the sampling commands: images per forward pass of the generator."""
    return option(8, "Images per forward pass.", concept="batch", ge=1, le=4096, cover=(1, 8))


@dataclass(frozen=True)
class GenerateConfig(Config):
    network: str = network()
    seeds: tuple[int, ...] = option(help="Seeds, e.g. 0-99,120 (z = RandomState(seed).randn, as NVlabs).", concept="seeds",
                                    parse=int_list, ge=0, le=SEED_MAX, cover=((0, 1),))
    out: Path = option(help="Output folder (a rerun with the same options skips; other options need --fresh).",
                       concept="out", cover=())
    trunc: float = trunc()
    trunc_cutoff: int | None = option(None, "Truncate only the first N layers of w.", ge=0, le=MAX_LAYERS, cover=(None, 0))
    noise_mode: NoiseMode = option(NoiseMode.const, "const | random | none.")
    class_idx: int | None = class_index()
    grid: bool = option(True, "Also write grid.png.")
    translate: tuple[float, ...] = option("0,0", "StyleGAN3: move the image by X,Y (in image widths; NVlabs gen_images.py "
                                          "--translate), a transform of its Fourier input.", parse=xy_pair, ge=-16, le=16,
                                          cover=((0.0, 0.0), (0.25, -0.5)), metavar="X,Y")
    rotate: float = option(0.0, "StyleGAN3: rotate the image by this many degrees (gen_images.py --rotate).", unit="degrees",
                           ge=-360, le=360, cover=(0.0, 30.0))
    batch: int = image_batch()
    device: str = option(concept="device", cover=())
    amp: bool = option(concept="amp")
    fresh: bool = option(concept="fresh", help="Start over: remove the outputs a previous run recorded in --out.")

    @property
    def moves_input(self) -> bool:
        """Whether --translate/--rotate change the StyleGAN3 input transform."""
        return self.rotate != 0 or any(self.translate)


@dataclass(frozen=True)
class MixConfig(Config):
    """Style mixing (--rows/--cols) or an interpolation (--interpolate A,B or --latents a.npz --latents b.npz)."""

    network: str = network()
    out: Path = option(help="Output folder (a rerun with the same options skips; other options need --fresh).",
                       concept="out", cover=())
    rows: tuple[int, ...] | None = option(None, "Row seeds (they supply the layers not in --styles).", parse=int_list, ge=0,
                                          le=SEED_MAX, panel=MIX_PANEL, cover=())
    cols: tuple[int, ...] | None = option(None, "Column seeds (they supply the layers in --styles).", parse=int_list, ge=0,
                                          le=SEED_MAX, panel=MIX_PANEL, cover=())
    styles: tuple[int, ...] = option("0-6", "Layer indices of w taken from the column seed ('' for none).",
                                     parse=int_list_or_none, ge=0, le=MAX_LAYERS - 1, panel=MIX_PANEL,
                                     cover=((0, 1, 2), ()), metavar="LAYERS")
    interpolate: tuple[int, ...] | None = option(None, "Interpolate between two seeds: A,B.", parse=seed_pair, ge=0,
                                                 le=SEED_MAX, panel=INTERP_PANEL, cover=())
    latents: tuple[Path, ...] = option((), "Interpolate between two latent .npz files (give twice).", panel=INTERP_PANEL,
                                       cover=())
    space: Space = option(Space.z, "z (slerp between seeds) | w (lerp; latent files hold w).", panel=INTERP_PANEL)
    frames: int = option(60, "Number of interpolation frames.", ge=2, le=10_000, panel=INTERP_PANEL, cover=(2, 3))
    fps: float = option(20.0, "GIF frame rate.", unit="frames/s", gt=0, le=1000, panel=INTERP_PANEL, cover=(20.0, 0.5))
    trunc: float = trunc()
    noise_mode: NoiseMode = option(NoiseMode.const, "const | random | none.")
    class_idx: int | None = class_index()
    batch: int = image_batch()
    device: str = option(concept="device", cover=())
    amp: bool = option(concept="amp")
    fresh: bool = option(concept="fresh", help="Start over: remove the outputs a previous run recorded in --out.")

    @property
    def interpolating(self) -> bool:
        return self.interpolate is not None or bool(self.latents)

    def check(self) -> None:
        grid = self.rows is not None or self.cols is not None
        require(not (grid and self.interpolating), "give either --rows/--cols (style mixing) or --interpolate/--latents, not both")
        require(self.interpolate is None or not self.latents,
                "give --interpolate A,B or --latents a.npz --latents b.npz, not both")
        require(not self.latents or len(self.latents) == 2, f"--latents needs exactly two files, got {len(self.latents)}",
                hint="--latents a.npz --latents b.npz")
        require(not self.latents or self.space is Space.w, "--space z needs seeds: --latents files hold w",
                hint="use --space w with --latents")
        require(self.interpolating or (self.rows and self.cols), "style mixing needs --rows and --cols",
                hint="e.g. --rows 85,100 --cols 55,821, or use --interpolate A,B")


@dataclass(frozen=True)
class BlendConfig(Config):
    base: str = option(help="The original network (registry name, file, run directory, random:RES or "
                       "random:stylegan3:RES).", flags="--base", cover=NETWORK_COVER)
    finetuned: str = option(help="A network fine-tuned from --base (or a random:RES stand-in).", flags="--finetuned",
                            cover=NETWORK_COVER)
    out: str = option(help="Blended network (.safetensors), or a folder (ending in /) for blended.safetensors; the preview "
                      "goes next to it. A --swap-res sweep writes into a folder.", concept="out", cover=())
    swap_res: tuple[int, ...] | None = option(None, "StyleGAN2: layers at this resolution and above come from the "
                                              "non-structure network (default 32 when --swap-layer is not given); several "
                                              "(4,8,16,32) make a sweep: one network each in the --out folder and sweep.png.",
                                              parse=int_list, unit="px", ge=4, le=MAX_RES, cover=(None, (8,), (4, 8)),
                                              metavar="RES")
    swap_layer: tuple[int, ...] | None = option(None, "Layers from this index on come from the non-structure network "
                                                "(StyleGAN3: 0 = the Fourier input, i+1 = layer L{i}, the index of the w it "
                                                "reads; StyleGAN2: 2*log2(res)-4 for a resolution's first layer, +1 for its "
                                                "second, so --swap-layer 6 = --swap-res 32); several make a sweep.",
                                                parse=int_list, ge=0, le=MAX_LAYERS - 1, cover=(None, (3,), (1, 4)),
                                                metavar="INDEX")
    blend_width: float | None = option(None, "Smooth sigmoid transition width (in layers); default: hard swap.", unit="layers",
                                       gt=0, le=100, cover=(None, 1.0))
    structure: Structure = option(Structure.finetuned, "Network giving the low resolutions, mapping and noise: finetuned | base.")
    preview_seeds: tuple[int, ...] = option("0-5", "Seeds for the preview grid ('' for none).",
                                            parse=int_list_or_none, ge=0, le=SEED_MAX, cover=((0,), ()), metavar="SEEDS")
    trunc: float = trunc("Truncation psi for the preview (1 = none, 0 = the average image).")
    device: str = option(concept="device", cover=())
    metrics: tuple[str, ...] = option("", "Score every blend with these metric names (as in score), e.g. fid10k; needs --ref.",
                                      concept="metrics", parse=lambda text, flag: tuple(m.strip() for m in text.split(",") if m.strip()),
                                      cover=())
    ref: str | None = option(None, "Reference images for --metrics: folder, .zip or stats:NAME/RES.", cover=())
    num_gen: int | None = option(None, help="With --metrics: generated images per blend, as score --num-gen (the result "
                                 "records the count each metric used).", concept="num_gen", ge=1,
                                 le=1_000_000, cover=())
    fresh: bool = option(concept="fresh", help="Start over: overwrite the outputs a previous run recorded in --out.")
    extractors: dict[str, Any] = field(default_factory=dict)  # feature-model overrides for --metrics (library only)

    @property
    def swap_option(self) -> str:
        """The field that places the swap: swap_layer when given, else swap_res."""
        return "swap_layer" if self.swap_layer is not None else "swap_res"

    @property
    def swap_points(self) -> list[int]:
        """The swap resolutions or layer indices (one blend each), ascending."""
        return sorted(self.swap_layer if self.swap_layer is not None else self.swap_res or (32,))

    @property
    def sweep(self) -> bool:
        return len(self.swap_points) > 1

    def check(self) -> None:
        require(self.swap_res is None or self.swap_layer is None, "--swap-res and --swap-layer both place the swap: give one",
                hint="--swap-res for StyleGAN2 resolutions, --swap-layer for layer indices (StyleGAN3)")
        flag = "--" + self.swap_option.replace("_", "-")
        require(len(set(self.swap_points)) == len(self.swap_points), f"{flag} {','.join(map(str, self.swap_points))} repeats a value",
                hint=f"e.g. {flag} {'4,8,16,32,64' if self.swap_layer is None else '2,4,6,8'}")
        for res in self.swap_res or ():
            require(not res & (res - 1), f"--swap-res {res} must be a power of two >= 4", hint="e.g. --swap-res 32")
        require(bool(self.metrics) == (self.ref is not None), "--metrics and --ref go together",
                hint="e.g. --metrics fid10k --ref data/faces-256")
        require(self.num_gen is None or bool(self.metrics), "--num-gen needs --metrics", hint="e.g. --metrics fid --num-gen 1000")
        require(not self.sweep or not self.out.endswith(".safetensors"),
                f"--out {self.out}: a sweep writes one network per swap into a folder", hint="e.g. --out blends/")
