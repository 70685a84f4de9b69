"""`stylekit convert`: write a StyleGAN2 network as stylekit .safetensors, rosinality .pt or an NVlabs state dict."""

from pathlib import Path
from typing import Annotated

import typer

from stylekit.cli.common import Table, command, fields, render

ORDER = 66

FORMATS = "safetensors | rosinality | nvlabs-state"

_EXAMPLES = [
    "stylekit convert runs/toon --to rosinality --out toon.pt",
    "stylekit convert toonify.safetensors --to nvlabs-state --out toonify-G.pt",
    "stylekit convert network-snapshot-000400.pkl --to safetensors --out net.safetensors",
    "stylekit convert stylegan2-ffhq-config-f.pt --to safetensors --out ffhq.safetensors --no-verify",
]


def _table(r: object) -> Table:
    diff = r.max_abs_diff  # type: ignore[attr-defined]
    rows = [["source", f"{r.source} ({r.source_format})"], ["networks", ", ".join(r.networks)],  # type: ignore[attr-defined]
            ["resolution", r.resolution], ["wrote", ", ".join(r.files)],  # type: ignore[attr-defined]
            ["max pixel diff", "not checked" if diff is None else f"{diff:.3g}"], ["seconds", r.seconds]]  # type: ignore[attr-defined]
    rows += [["note", n] for n in r.notes]  # type: ignore[attr-defined]
    return fields(f"convert -> {r.to}", rows)  # type: ignore[attr-defined]


def register(app: typer.Typer) -> None:
    @command(
        app,
        "convert",
        help="Write a StyleGAN2 network in another tool's format (rosinality .pt, NVlabs state dict, stylekit .safetensors).",
        examples=_EXAMPLES,
    )
    def convert(
        network: Annotated[str, typer.Argument(
            help="Network: registry name, NVlabs .pkl, rosinality .pt, stylekit .safetensors, nvlabs-state .pt or a run directory.")],
        to: Annotated[str, typer.Option("--to", help=f"Output format: {FORMATS}. rosinality is what pSp, e4e, StyleGAN-NADA "
                                        "and StyleCLIP read; nvlabs-state loads with G.load_state_dict in NVlabs code "
                                        "(init kwargs in the .json next to it).")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Output file (.safetensors, or .pt for rosinality / nvlabs-state).")],
        verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Load the output back and compare two rendered "
                                             "seeds with the input (max pixel difference in the result).")] = True,
    ) -> None:
        from stylekit.edit.convert import ConvertConfig, run_convert

        result = run_convert(ConvertConfig(network=network, to=to, out=out, verify=verify))
        render(result, table=_table)
