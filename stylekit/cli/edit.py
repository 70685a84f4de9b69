"""GAN inversion and text edits: `stylekit invert` (NVlabs projector / Image2StyleGAN) and `stylekit styleclip`."""

from pathlib import Path
from typing import Any

import typer

from stylekit.cli.common import Table, command, fields, render
from stylekit.configs.edit import InvertConfig, StyleClipConfig

ORDER = 75


def _invert_tables(r: Any) -> list[Table]:
    tables = [Table(
        f"invert ({r.space}, {r.loss}, {r.steps} steps)",
        ["target", "status", "loss", "PSNR dB", "seconds", "out"],
        [[Path(i.target).name, i.status, "-" if i.final_loss is None else i.final_loss, "-" if i.psnr is None else i.psnr,
          "-" if i.seconds is None else i.seconds, i.out] for i in r.items],
    )]
    if r.standins:
        tables.append(fields("stand-ins", [["stand-in", s] for s in r.standins]))
    return tables


def _styleclip_table(r: Any) -> Table:
    return fields("styleclip", [
        ["start", r.start], ["mode", r.mode], ["steps", r.steps], ["grid", r.grid],
        *[[p.prompt, f"similarity {p.similarity_before:.4f} -> {p.similarity_after:.4f}, L2 {p.l2:.4g}: {p.edited}"]
          for p in r.prompts],
        ["up to date", "yes (nothing redone)" if r.up_to_date else "no"], *[["stand-in", s] for s in r.standins],
        ["seconds", r.seconds]])


def register(app: typer.Typer) -> None:
    @command(
        app,
        "invert",
        help="Embed an image (or a folder of images) in a StyleGAN2 or StyleGAN3 latent space (GAN inversion).",
        examples=["stylekit generate --network random:64 --seeds 7,8 --out photos/",
                  "stylekit invert photos/seed0007.png --network random:64 --vgg-weights random --steps 10 --out inv/",
                  "stylekit invert photos/ --network random:64 --space w+ --loss vgg --vgg-weights random --steps 10 --out inv-all/",
                  "stylekit invert photos/ --network random:64 --loss mse --batch 2 --steps 10 --amp --out inv-fast/"],
        notes="Targets are centre-cropped and Lanczos-resized to the network resolution (with --align ffhq: FFHQ-aligned face "
              "crops). A rerun skips targets that are up to date; targets made with other options are refused (exit 2) "
              "unless --fresh. --network random:RES and --vgg-weights random are random-init stand-ins (results not meaningful).",
        config=InvertConfig,
    )
    def invert(cfg: InvertConfig) -> None:
        from stylekit.edit.invert import run_invert

        render(run_invert(cfg), table=_invert_tables)

    @command(
        app,
        "styleclip",
        help="Edit a StyleGAN2 or StyleGAN3 latent towards a text prompt with CLIP (StyleCLIP latent optimisation).",
        examples=['stylekit styleclip --network random:64 --latent inv/latent.npz --prompt "a smiling face" '
                  '--clip-model clip-tiny/ --steps 20 --out edit/',
                  'stylekit styleclip --network random:64 --latent-seed 12 --prompt "blond hair" --prompt "old age" '
                  '--clip-model clip-tiny/ --steps 20 --out edit-seed/'],
        notes="--latent takes invert's latent.npz or a generate latent file; --clip-model takes an open_clip name (ViT-B-32: "
              "stylekit download clip-vit-b-32) or a local open_clip model folder (clip-tiny/ above). A rerun with the same options skips and says so; "
              "other options are refused (exit 2) unless --fresh. --network random:RES is a random-init stand-in.",
        config=StyleClipConfig,
    )
    def styleclip(cfg: StyleClipConfig) -> None:
        from stylekit.edit.styleclip import run_styleclip

        render(run_styleclip(cfg), table=_styleclip_table)
