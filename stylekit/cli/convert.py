"""`stylekit convert`: write a StyleGAN2 or StyleGAN3 network as stylekit .safetensors, rosinality .pt or an NVlabs state dict."""

import typer

from stylekit.cli.common import Table, command, fields, render
from stylekit.configs.convert import ConvertConfig

ORDER = 66

_EXAMPLES = [
    "stylekit convert random:64 --to safetensors --out net.safetensors",
    "stylekit convert net.safetensors --to rosinality --out net.pt",
    "stylekit convert net.pt --to nvlabs-state --out net-G.pt",
    "stylekit convert net.pt --to safetensors --out back.safetensors --no-verify",
]


def _table(r: object) -> Table:
    diff = r.max_abs_diff  # type: ignore[attr-defined]
    rows = [["source", f"{r.source} ({r.source_format})"], ["networks", ", ".join(r.networks)],  # type: ignore[attr-defined]
            ["resolution", r.resolution], ["wrote", ", ".join(r.files)],  # type: ignore[attr-defined]
            ["max pixel diff", "not checked" if diff is None else f"{diff:.3g}"], ["seconds", r.seconds]]  # type: ignore[attr-defined]
    rows += [["note", n] for n in r.notes]  # type: ignore[attr-defined]
    rows += [["stand-in", n] for n in r.standins]  # type: ignore[attr-defined]
    return fields(f"convert -> {r.to}", rows)  # type: ignore[attr-defined]


def register(app: typer.Typer) -> None:
    @command(
        app,
        "convert",
        help="Write a StyleGAN2 or StyleGAN3 network in another tool's format (rosinality .pt, NVlabs state dict, stylekit .safetensors).",
        examples=_EXAMPLES,
        notes="NETWORK random:RES is a random-init stand-in (for trying the command offline).",
        config=ConvertConfig,
    )
    def convert(cfg: ConvertConfig) -> None:
        from stylekit.edit.convert import run_convert

        render(run_convert(cfg), table=_table)
