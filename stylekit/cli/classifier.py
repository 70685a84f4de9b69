"""`stylekit train-classifier DATA --out RUN`: art-style classifier + learned style-similarity embedding."""

from typing import Any

import typer

from stylekit.cli.common import Table, command, render
from stylekit.configs.classifier import ClassifierConfig

ORDER = 30

_EXAMPLES = [
    "stylekit download toy-styles --out data/toy --size 32 --per-style 10 --styles 4",
    "stylekit train-classifier data/toy --size 32 --epochs 2 --out runs/style",
    "stylekit train-classifier data/toy --backbone resnet18 --backbone-weights random --size 32 --epochs 1 --out runs/style-r18",
    "torchrun --standalone --nproc_per_node 2 -m stylekit train-classifier data/toy --size 32 --epochs 2 --batch 16 --amp --out runs/style-ddp",
    "stylekit train-classifier data/toy --eval-only --style-model runs/style --out runs/style-eval",
]
_NOTES = ("Re-running the same command on the same --out resumes from the latest checkpoint (a finished run is not "
          "trained again); --fresh starts over. --backbone-weights random trains from a random-init backbone: a stand-in "
          "for trying the command offline, labelled in the output.")


def _table(result: dict[str, Any]) -> Table:
    title = "evaluation" if result["eval_only"] else f"train-classifier: {result['epochs']} epochs, {result['steps']} steps"
    return Table(title, ["metric", "value"], _rows(result))


def _rows(result: dict[str, Any]) -> list[list[Any]]:
    t = result["test"]
    rows = [[k, t[k]] for k in ("top1", "top5", "macro_f1", "map@10", "recall@1", "n") if k in t]
    rows.append(["skipped images", len(result["images"].get("skipped", []))])
    rows.append(["style model", result["style_model"]])
    rows += [["stand-in", name] for name in result.get("stand_ins", [])]
    return rows


def register(app: typer.Typer) -> None:
    @command(app, "train-classifier", help="Train an art-style classifier and style-similarity embedding (CE + SupCon).",
             examples=_EXAMPLES, notes=_NOTES, config=ClassifierConfig)
    def train_classifier_cmd(cfg: ClassifierConfig) -> None:
        from stylekit.train.classifier import train_classifier

        render(train_classifier(cfg).to_dict(), table=_table)
