"""`stylekit train-cyclegan A/ B/ --out RUN`: unpaired translation between two image domains (CycleGAN)."""

from typing import Any

import typer

from stylekit.cli.common import Table, command, fields, render
from stylekit.configs.cyclegan import CycleGANConfig

ORDER = 51

_EXAMPLES = [
    "stylekit download toy-styles --out data/toy --size 64 --per-style 200",
    "stylekit train-cyclegan data/toy/content data/toy/dots --size 64 --epochs 20 --out runs/cg-toy",
    "stylekit train-cyclegan data/photos data/monet --out runs/photo2monet",
    "stylekit train-cyclegan data/toy/content data/toy/dots --size 64 --judge runs/style --out runs/cg-judged",
    "torchrun --nproc_per_node 4 -m stylekit train-cyclegan data/photos data/monet --batch 4 --amp --out runs/p2m",
]
_NOTES = ("Re-running the same command on the same --out resumes (networks, optimizers, schedules, image pools, "
          "epoch); --fresh starts over. Held-out images: A/val|test beside A/train, manifest splits, else "
          "--val-fraction of each domain (docs/cyclegan.md).")


def _show(r: dict[str, Any]) -> Table:
    def num(value: float | None, fmt: str = ".4f") -> str:
        return "-" if value is None else format(value, fmt)

    rows = [
        ["run", r["out"]],
        ["data", f"A {r['train_a']} train / {r['val_a']} held out, B {r['train_b']} train / {r['val_b']} held out"],
        ["epochs / steps", f"{r['epochs']} / {r['steps']}"],
        ["parameters", f"G {r['params_g']:,} each, D {r['params_d']:,} each"],
        ["cycle error A / B", f"{num(r['cycle_error_a'])} / {num(r['cycle_error_b'])}"],
        ["judged B style (A->B / A)", f"{num(r['judge_share_b'], '.3f')} / {num(r['judge_share_b_untranslated'], '.3f')}"],
        ["style distance A->B to B", num(r["judge_style_distance"])],
        ["generators", f"{r['generator_a2b']}, {r['generator_b2a']}"],
        ["seconds", r["seconds"]],
    ]
    return fields("train-cyclegan", rows)


def register(app: typer.Typer) -> None:
    @command(app, "train-cyclegan", help="Train CycleGAN between two unpaired image folders (resumable, torchrun-ready).",
             examples=_EXAMPLES, notes=_NOTES, config=CycleGANConfig)
    def train_cyclegan_cmd(cfg: CycleGANConfig) -> None:
        import dataclasses

        from stylekit.train.cyclegan import train_cyclegan

        render(dataclasses.asdict(train_cyclegan(cfg)), table=_show)
