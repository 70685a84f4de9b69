"""`stylekit directions`: latent edit directions of a StyleGAN2 or StyleGAN3 network (SeFa, or towards a style) and their edit sheet."""

from typing import Any

import typer

from stylekit.cli.common import Table, command, fields, render
from stylekit.configs.directions import DirectionsConfig

ORDER = 61  # after generate / mix / blend-layers

_EXAMPLES = [
    "stylekit directions --network random:32 --method sefa --num 3 --layers 0-3 --out dirs/",
    "stylekit directions --network random:32 --directions dirs/directions.npz --seeds 5,6 --strengths -2,0,2 --out dirs-again/",
    "stylekit download toy-styles --out data/toy --size 32 --per-style 8",
    "stylekit train-classifier data/toy --size 32 --epochs 1 --out runs/style",
    "stylekit directions --network random:32 --method classifier --style-model runs/style --style pop --samples 64 "
    "--strengths -2,0,2 --out dirs-pop/ --json",
]
_NOTES = ("Edits move only the --layers of w (default all); the sheet has one row per direction and seed (or latent of "
          "--latents) and one column per strength. edited.npz holds the edited latents (latent format: generate, mix "
          "--latents and styleclip --latent read it). Rerunning into the same --out with the same options skips the work; "
          "other options are refused (exit 2) unless --fresh. --network random:RES is a random-init stand-in.")


def _table(r: Any) -> list[Table]:
    tables = [fields("directions", [
        ["method", r.method], ["layers", ",".join(map(str, r.layers))], *[[k, v] for k, v in r.files.items()],
        ["up to date", "yes (nothing redone)" if r.up_to_date else "no"], *[["stand-in", s] for s in r.standins],
        ["seconds", r.seconds]])]
    tables.append(Table("directions found", ["index", *[k for k in r.directions[0] if k != "index"]],
                        [list(d.values()) for d in r.directions]))
    if r.probability:
        tables.append(Table(f"mean probability of {r.style} on {r.held_out} held-out latents", ["strength", "probability"],
                            [[p["strength"], f"{p['mean']:.4f}"] for p in r.probability]))
    return tables


def register(app: typer.Typer) -> None:
    @command(
        app,
        "directions",
        help="Find latent edit directions (SeFa, or towards a style of a style model) and apply them as an edit sheet.",
        examples=_EXAMPLES,
        notes=_NOTES,
        config=DirectionsConfig,
    )
    def directions(cfg: DirectionsConfig) -> None:
        from stylekit.edit.directions import run_directions

        render(run_directions(cfg), table=_table)
