"""`stylekit train-pix2pix DATA --refs 5 --size 512 --out RUN`: pix2pix conditioned on K style references."""

from typing import Any

import typer

from stylekit.cli.common import Table, command, fields, render
from stylekit.configs.pix2pix import Pix2PixConfig

ORDER = 50

_EXAMPLES = [
    "stylekit download toy-styles --out data/toy --size 64 --per-style 200",
    "stylekit train-pix2pix data/toy --refs 5 --size 64 --epochs 10 --decay-epochs 5 --out runs/p2p-toy",
    "stylekit train-pix2pix data/facades --refs 0 --net-g resnet9 --preprocess crop --no-flip --out runs/facades",
    "stylekit train-pix2pix data/toy --refs 3 --size 64 --ref-cls-weight 1 --ref-metric-weight 1 --out runs/p2p-code",
    "torchrun --nproc_per_node 8 -m stylekit train-pix2pix data/pairs --refs 5 --size 512 --batch 8 --out runs/p2p",
    "stylekit transfer content/ style1.png style2.png style3.png --method pix2pix --model runs/p2p --out styled/",
]
_NOTES = ("Re-running the same command on the same --out resumes (networks, optimizers, schedules, epoch); "
          "--fresh starts over. DATA: a toy-styles folder, A/ + B/ folders, or aligned A|B images (docs/pix2pix.md).")

def _show(r: dict[str, Any]) -> Table:
    def num(value: float | None, fmt: str = ".4f") -> str:
        return "-" if value is None else format(value, fmt)

    rows = [
        ["run", r["out"]],
        ["data", f"{r['data_format']}: {r['train_pairs']} train / {r['val_pairs']} held out, {r['styles']} style(s)"],
        ["epochs / steps", f"{r['epochs']} / {r['steps']}"],
        ["parameters", f"G {r['params_g'] / 1e6:.2f}M, D {r['params_d'] / 1e6:.2f}M"],
        ["val_l1 (right-style refs)", num(r["val_l1"])],
        ["val_l1_wrong_refs", num(r["val_l1_wrong_refs"])],
        ["right / wrong", num(r["ratio"], ".3f")],
        ["generator", r["generator"]],
        ["seconds", r["seconds"]],
    ]
    return fields("train-pix2pix", rows)


def _doc(r: Any) -> dict[str, Any]:
    import dataclasses

    return {**dataclasses.asdict(r), "ratio": r.ratio}


def register(app: typer.Typer) -> None:
    @command(app, "train-pix2pix", help="Train pix2pix whose generator reads K style reference images (resumable, torchrun-ready).",
             examples=_EXAMPLES, notes=_NOTES, config=Pix2PixConfig)
    def train_pix2pix_cmd(cfg: Pix2PixConfig) -> None:
        from stylekit.train.pix2pix import train_pix2pix

        render(_doc(train_pix2pix(cfg)), table=_show)
