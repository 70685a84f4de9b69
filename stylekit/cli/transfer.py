"""`stylekit transfer`: Gatys neural style transfer of one image or a folder of images."""

from typing import Any

import typer

from stylekit.cli.common import Table, command, render
from stylekit.configs.transfer import TransferConfig

ORDER = 60

_EXAMPLES = [
    "stylekit download toy-styles --out data/toy --size 256 --per-style 4",
    "stylekit transfer data/toy/content/00000.png data/toy/pop/00000.png --size 256 --vgg-weights random --out out.png",
    "stylekit transfer data/toy/content/00001.png data/toy/pop/00000.png data/toy/dots/00000.png --style-blend-weights 0.7,0.3 "
    "--original-colors --vgg-weights random --out blend.png",
    "stylekit transfer data/toy/content/00000.png data/toy/pop/00000.png --multires 128,256 --steps 500,200 "
    "--vgg-weights random --out big.png",
    "stylekit transfer data/toy/content data/toy/pop/00000.png --size 128 --steps 300 --vgg-weights random --out stylised/",
    "stylekit transfer data/toy/content data/toy/pop/00000.png --size 128 --optimizer adam --batch 4 --vgg-weights random "
    "--out stylised-adam/",
    "stylekit transfer data/toy/content/00000.png data/toy/pop/00000.png --normalize-gradients --optimizer adam "
    "--content-weight 5 --style-weight 100 --vgg-weights random --out normalised.png",
    "stylekit train-pix2pix data/toy --refs 2 --size 64 --epochs 5 --out runs/p2p",
    "stylekit transfer data/toy/content data/toy/pop/00001.png data/toy/pop/00002.png --method pix2pix --model runs/p2p "
    "--out styled/",
    "stylekit transfer data/toy/content data/toy/pop/00001.png --method pix2pix --model runs/p2p --targets data/toy/pop "
    "--out results/",
]
_NOTES = ("--vgg-weights random is a random-init stand-in for trying the command offline (results are not meaningful); "
          "without it the registry vgg19 is used (stylekit download vgg19). One rerun rule for a file and a folder: "
          "up-to-date outputs are skipped (and said so), edited content images redone, and outputs made with other "
          "styles, options or model refused (--fresh redoes them); the recipes live in stylekit-outputs.json next to "
          "the outputs. A pix2pix folder run also writes OUT/index.html. A step is one loss+gradient evaluation (one "
          "Adam update; an L-BFGS iteration takes one or more).")


def register(app: typer.Typer) -> None:
    @command(app, "transfer", help="Neural style transfer: restyle CONTENT (an image or a folder) after STYLE image(s) (Gatys, or a trained pix2pix-ref model).",
             examples=_EXAMPLES, notes=_NOTES, config=TransferConfig)
    def transfer(cfg: TransferConfig) -> None:
        from stylekit.transfer import run_transfer

        render(run_transfer(cfg), table=_table)


def _table(report: Any) -> Table:
    rows = []
    for item in report.items:
        stages = item.get("stages") or []
        loss = f"{stages[0]['loss_start'].get('total', float('nan')):.4g} -> {stages[-1]['loss_end']['total']:.4g}" if stages else ""
        rows.append([item["content"], item["output"], item["status"], item.get("steps", ""), item.get("seconds", ""), loss or item.get("reason", "")])
    title = f"transfer ({report.method}): {report.done} done, {report.skipped} skipped, {report.failed} failed in {report.seconds:.1f}s"
    if report.standin:
        title += f" [{report.standin}]"
    return Table(title, ["content", "output", "status", "steps", "seconds", "loss / reason"], rows)
