"""`stylekit finetune-stylegan`: StyleGAN2-ADA transfer learning with ADA and FreezeD (resumable, torchrun)."""

import os
import subprocess
import sys
from typing import Any

import typer

from stylekit.cli.common import Table, command, fields, render
from stylekit.configs.finetune import FinetuneConfig

ORDER = 70

EXAMPLES = [
    "stylekit download toy-styles --out data/toy --size 64 --per-style 20 --styles 2",
    "stylekit prepare data/toy data/toy-64.zip --size 64 --format stylegan-zip --exclude content",
    "stylekit finetune-stylegan data/toy-64.zip --network random:64 --aug ada --freezed 4 --kimg 200 --out runs/toy",
    "stylekit finetune-stylegan data/toy-64.zip --network random:64 --metrics fid,kid --num-gen 1000 --kimg 200 --out runs/toy-fid",
    "torchrun --standalone --nproc_per_node 2 -m stylekit finetune-stylegan data/toy-64.zip --network random:64 --augpipe bg --mirror --kimg 200 --out runs/toy-ddp",
]
NOTES = ("Rerun the same command to resume; --fresh starts over. A step is one real image shown (kimg = steps / 1000) "
         "in the plan, the progress, checkpoints and metrics.jsonl. --network random:RES is a random-init stand-in "
         "for trying the command offline.")


def _relaunch(nproc: int) -> int:
    """Run this very command line again under torchrun with `nproc` processes (without --nproc)."""
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if arg == "--nproc":
            skip = True
            continue
        if arg.startswith("--nproc="):
            continue
        args.append(arg)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "stylekit", *args]
    return subprocess.call(cmd, env=os.environ.copy())


def _table(r: dict[str, Any]) -> Table:
    rows = [["network", r["network"]], ["kimg", r["kimg"]], ["ticks", r["ticks"]], ["augment p", round(r["augment_p"], 4)],
            ["r_t", "-" if r["rt"] is None else round(r["rt"], 3)], ["resolution", r["resolution"]], ["batch", r["batch"]],
            ["frozen D layers", ", ".join(r["frozen_layers"]) or "none"], ["images", r["images"]],
            ["sec/kimg", r["sec_per_kimg"] or "-"], ["seconds", r["seconds"]]]
    names = list(r["metric_counts"])
    rows += [[k, v] for k, v in r["last_metrics"].items() if any(k == n or k.startswith(f"{n}_") for n in names)]
    rows += [[f"{name} images", count] for name, count in r["metric_counts"].items()]
    if r["stand_in"]:
        rows.append(["stand-in", r["stand_in"]])
    return fields("finetune-stylegan", rows)


def register(app: typer.Typer) -> None:
    @command(app, "finetune-stylegan",
             help="Fine-tune a pretrained StyleGAN2 on your images with ADA and FreezeD (resumable, multi-GPU).",
             examples=EXAMPLES, notes=NOTES, config=FinetuneConfig)
    def finetune_stylegan(cfg: FinetuneConfig) -> None:
        if cfg.nproc > 1 and "LOCAL_RANK" not in os.environ:
            code = _relaunch(cfg.nproc)
            raise typer.Exit(130 if code in (130, -2) else code)
        from stylekit.train.stylegan import finetune_stylegan as run

        render(run(cfg).to_dict(), table=_table)
