"""`stylekit directions`: the options of finding latent edit directions in a StyleGAN2 or StyleGAN3 network (SeFa: Shen & Zhou
2021; a style classifier's boundary in W: Shen et al.'s InterFaceGAN) and applying them as an edit sheet."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from stylekit.configs.stylegan import MAX_LAYERS, SEED_MAX, class_index, image_batch, network, trunc
from stylekit.declare import Config, float_list, int_list, option, require

FIND_PANEL = "Finding directions"
APPLY_PANEL = "Edit sheet"
MAX_DIRECTIONS = 512  # w_dim of the NVlabs networks: there are no more directions than that
DEFAULT_NUM = 5  # SeFa directions kept when --num is not given
MAX_STRENGTH = 100.0  # |strength| along a unit direction in W: far beyond any image the network makes


class Method(StrEnum):
    sefa = "sefa"
    classifier = "classifier"


@dataclass(frozen=True)
class DirectionsConfig(Config):
    network: str = network()
    out: Path = option(help="Output folder: directions.npz, sheet.png, edited.npz, directions.json (a rerun with the same "
                       "options skips; other options need --fresh).", concept="out", cover=())
    method: Method = option(Method.sefa, "sefa (closed-form: top eigenvectors of the style affines' A^T A) | classifier "
                            "(the normal of a linear boundary in W between the images --style-model scores highest and "
                            "lowest for --style).", panel=FIND_PANEL)
    layers: tuple[int, ...] | None = option(None, "Layer indices of w the directions belong to (default: all; SeFa: all a style affine reads, so not StyleGAN3's input layer 0): SeFa "
                                            "factorises the style affines that read these layers, and the edits move "
                                            "only these layers (the others keep their w). Unlike mix --styles, which "
                                            "picks layers copied from another seed.", parse=int_list, ge=0,
                                            le=MAX_LAYERS - 1, panel=FIND_PANEL, cover=(None, (0, 1)), metavar="LAYERS")
    num: int | None = option(None, f"SeFa: directions kept, the eigenvectors with the largest eigenvalues (default "
                             f"{DEFAULT_NUM}).", ge=1, le=MAX_DIRECTIONS, panel=FIND_PANEL, cover=(None, 1))
    style_model: str | None = option(None, "--method classifier: a train-classifier run directory or its style-model "
                                     "export.", concept="style_model", panel=FIND_PANEL, cover=())
    style: str | None = option(None, "--method classifier: the style (a class name of --style-model) to move towards.",
                               panel=FIND_PANEL, cover=())
    samples: int = option(1000, "--method classifier: latents sampled (from --seed) and scored to fit the boundary.",
                          unit="images", ge=16, le=1_000_000, panel=FIND_PANEL, cover=(32,))
    fraction: float = option(0.25, "--method classifier: the top and the bottom fraction of --samples by style probability "
                             "fitted as the two sides of the boundary.", gt=0, le=0.5, panel=FIND_PANEL, cover=())
    seed: int = option(concept="seed", ge=0, le=SEED_MAX, cover=(0, 3))
    directions: Path | None = option(None, "Apply this directions.npz (from an earlier run) instead of finding directions.",
                                     panel=APPLY_PANEL, cover=())
    seeds: tuple[int, ...] | None = option(None, "Seeds edited on the sheet (default 0-3), e.g. 0-7,12.", concept="seeds",
                                           parse=int_list, ge=0, le=SEED_MAX, panel=APPLY_PANEL, cover=(None, (5,)))
    latents: Path | None = option(None, "Edit the latents of this file (invert's latent.npz, generate's latents.npz) "
                                  "instead of --seeds.", panel=APPLY_PANEL, cover=())
    strengths: tuple[float, ...] = option("-3,-1.5,0,1.5,3", "Steps along each unit direction in W (the sheet's columns).",
                                          parse=float_list, ge=-MAX_STRENGTH, le=MAX_STRENGTH, panel=APPLY_PANEL,
                                          cover=((-3.0, -1.5, 0.0, 1.5, 3.0), (2.0,)), metavar="STEPS")
    trunc: float = trunc()
    class_idx: int | None = class_index()
    batch: int = image_batch()
    device: str = option(concept="device", cover=())
    amp: bool = option(concept="amp")
    fresh: bool = option(concept="fresh", help="Start over: remove the outputs a previous run recorded in --out.")

    @property
    def kept(self) -> int:
        """SeFa's number of directions."""
        return self.num if self.num is not None else DEFAULT_NUM

    @property
    def sheet_seeds(self) -> tuple[int, ...]:
        return self.seeds if self.seeds is not None else (0, 1, 2, 3)

    def check(self) -> None:
        classifier = self.method is Method.classifier
        if self.directions is not None:
            require(self.style_model is None and self.style is None and self.layers is None,
                    "--directions applies saved directions (with their layers): drop --style-model, --style and --layers",
                    hint="or drop --directions to find new ones")
        else:
            require(not classifier or (self.style_model and self.style),
                    "--method classifier needs --style-model RUN and --style NAME",
                    hint="e.g. --style-model runs/style --style pop")
            require(classifier or (self.style_model is None and self.style is None),
                    "--style-model and --style go with --method classifier", hint="add --method classifier")
        require(self.num is None or (self.directions is None and self.method is Method.sefa),
                "--num is the number of SeFa directions to find: it does not go with --directions or --method classifier",
                hint="drop --num")
        require(self.latents is None or self.seeds is None, "give --seeds or --latents, not both")
        require(len(set(self.strengths)) == len(self.strengths), "--strengths repeats a value", hint="e.g. -3,-1.5,0,1.5,3")
        require(self.layers is None or len(set(self.layers)) == len(self.layers), "--layers repeats a layer",
                hint="e.g. --layers 0-5")
