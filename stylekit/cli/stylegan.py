"""StyleGAN2 commands: generate, mix (style mixing / interpolation), blend-layers (toonify)."""

from pathlib import Path
from typing import Annotated, Any

import typer

from stylekit.cli.common import Table, command, fields, parse_int_list, render
from stylekit.cli.vocabulary import CONCEPTS, option

ORDER = 60


def _two(text: str, option: str) -> tuple[int, int]:
    from stylekit.errors import BadInput

    values = parse_int_list(text, option)
    if len(values) != 2:
        raise BadInput(f"{option} '{text}' must name exactly two seeds", hint=f"e.g. {option} 12,34")
    return values[0], values[1]


def register(app: typer.Typer) -> None:
    @command(
        app,
        "generate",
        help="Generate images (and their w latents) from seeds with a StyleGAN2 network.",
        examples=["stylekit generate --network ffhq-256 --seeds 0-7 --trunc 0.7 --out gen/"],
    )
    def generate(
        seeds: Annotated[str, typer.Option("--seeds", help="Seeds, e.g. 0-99,120 (z = RandomState(seed).randn, as NVlabs).")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
        network: str = option("network", required=True),
        trunc: float = option("trunc"),
        trunc_cutoff: Annotated[int | None, typer.Option("--trunc-cutoff", help="Truncate only the first N layers of w.")] = None,
        noise_mode: Annotated[str, typer.Option("--noise-mode", help="const | random | none")] = "const",
        class_idx: Annotated[int | None, typer.Option("--class", help="Class index for conditional networks.")] = None,
        grid: Annotated[bool, typer.Option("--grid/--no-grid", help="Also write grid.png.")] = True,
        batch: int = option("batch", "Images per forward pass.", default=8),
        device: str = option("device"),
        amp: bool = option("amp"),
    ) -> None:
        from stylekit.edit.generate import GenerateConfig, run_generate

        cfg = GenerateConfig(
            network=network, seeds=parse_int_list(seeds, "--seeds"), out=out, trunc=trunc, trunc_cutoff=trunc_cutoff,
            noise_mode=noise_mode, class_idx=class_idx, grid=grid, device=device, batch=batch, amp=amp,
        )
        result = run_generate(cfg)
        render(result, table=lambda r: fields("generate", [
            ["images", len(r.images)], ["resolution", r.resolution], ["out", r.out], ["grid", r.grid or "-"],
            ["latents", r.latents], ["seconds", r.seconds]]))

    @command(
        app,
        "mix",
        help="Style-mixing grid (rows x cols of seeds) or an interpolation GIF between two seeds or latent files.",
        examples=["stylekit mix --network ffhq-256 --rows 85,100 --cols 55,821 --styles 0-6 --out mix/",
                  "stylekit mix --network ffhq-256 --interpolate 1,2 --space w --frames 60 --out interp/"],
    )
    def mix(
        out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
        network: str = option("network", required=True),
        rows: Annotated[str | None, typer.Option("--rows", help="Row seeds (they supply the layers not in --styles).")] = None,
        cols: Annotated[str | None, typer.Option("--cols", help="Column seeds (they supply the layers in --styles).")] = None,
        styles: Annotated[str, typer.Option("--styles", help="Layer indices of w taken from the column seed ('' for none).")] = "0-6",
        interpolate: Annotated[str | None, typer.Option("--interpolate", help="Interpolate between two seeds: A,B.")] = None,
        latents: Annotated[list[Path] | None, typer.Option("--latents", help="Interpolate between two latent .npz files (give twice).")] = None,
        space: Annotated[str, typer.Option("--space", help="z (slerp between seeds) | w (lerp).")] = "z",
        frames: Annotated[int, typer.Option("--frames", help="Number of interpolation frames.")] = 60,
        fps: Annotated[float, typer.Option("--fps", help="GIF frame rate.")] = 20.0,
        trunc: float = option("trunc"),
        noise_mode: Annotated[str, typer.Option("--noise-mode", help="const | random | none")] = "const",
        class_idx: Annotated[int | None, typer.Option("--class", help="Class index for conditional networks.")] = None,
        batch: int = option("batch", "Images per forward pass.", default=8),
        device: str = option("device"),
        amp: bool = option("amp"),
    ) -> None:
        from stylekit.errors import BadInput

        interp = interpolate is not None or bool(latents)
        if interp and (rows or cols):
            raise BadInput("give either --rows/--cols (style mixing) or --interpolate/--latents, not both")
        if interp:
            from stylekit.edit.mix import InterpolateConfig, run_interpolate

            if interpolate is not None and latents:
                raise BadInput("give --interpolate A,B or --latents a.npz --latents b.npz, not both")
            if latents and len(latents) != 2:
                raise BadInput(f"--latents needs exactly two files, got {len(latents)}", hint="--latents a.npz --latents b.npz")
            icfg = InterpolateConfig(
                network=network, out=out, seeds=_two(interpolate, "--interpolate") if interpolate else None,
                latents=(latents[0], latents[1]) if latents else None, space=space, frames=frames, trunc=trunc,
                noise_mode=noise_mode, class_idx=class_idx, fps=fps, device=device, batch=batch, amp=amp,
            )
            iresult = run_interpolate(icfg)
            render(iresult, table=lambda r: fields("interpolate", [
                ["frames", len(r.frames)], ["space", r.space], ["gif", r.gif], ["seconds", r.seconds]]))
            return
        if not rows or not cols:
            raise BadInput("style mixing needs --rows and --cols", hint="e.g. --rows 85,100 --cols 55,821, or use --interpolate A,B")
        from stylekit.edit.mix import MixConfig, run_mix

        cfg = MixConfig(
            network=network, rows=parse_int_list(rows, "--rows"), cols=parse_int_list(cols, "--cols"), out=out,
            styles=parse_int_list(styles, "--styles") if styles.strip() else [], trunc=trunc, noise_mode=noise_mode,
            class_idx=class_idx, device=device, batch=batch, amp=amp,
        )
        result = run_mix(cfg)
        render(result, table=lambda r: fields("mix", [
            ["images", len(r.images)], ["styles", ",".join(map(str, r.styles)) or "none"], ["num_ws", r.num_ws],
            ["grid", r.grid], ["seconds", r.seconds]]))

    @command(
        app,
        "blend-layers",
        help="Blend two generators by resolution (toonify layer swapping) into a new network.",
        examples=["stylekit blend-layers --base ffhq-256 --finetuned runs/toon --swap-res 32 --out toonify.safetensors",
                  "stylekit blend-layers --base ffhq-256 --finetuned runs/toon --swap-res 4,8,16,32,64,128 --metrics fid10k --ref data/toons-256 --out sweep/"],
    )
    def blend_layers(
        base: Annotated[str, typer.Option("--base", help="The original network. " + CONCEPTS["network"].help)],
        finetuned: Annotated[str, typer.Option("--finetuned", help="A network fine-tuned from --base.")],
        out: Annotated[str, typer.Option("--out", "-o", help="Blended network (.safetensors), or a folder (ending in /) for blended.safetensors; the preview goes next to it.")],
        swap_res: Annotated[str, typer.Option("--swap-res", help="Layers at this resolution and above come from the non-structure network; several (4,8,16,32) make a sweep: one network each in the --out folder and sweep.png.")] = "32",
        blend_width: Annotated[float | None, typer.Option("--blend-width", help="Smooth sigmoid transition width (in layers); default: hard swap.")] = None,
        structure: Annotated[str, typer.Option("--structure", help="Network giving the low resolutions, mapping and noise: base | finetuned.")] = "finetuned",
        preview_seeds: Annotated[str, typer.Option("--preview-seeds", help="Seeds for the preview grid ('' for none).")] = "0-5",
        trunc: float = option("trunc", "Truncation psi for the preview (1 = none)."),
        device: str = option("device"),
        metrics: Annotated[str | None, typer.Option("--metrics", help="Score every blend with these metric names (as in score), e.g. fid10k; needs --ref.", show_default=False)] = None,
        ref: Annotated[str | None, typer.Option("--ref", help="Reference images for --metrics: folder, .zip or stats:NAME/RES.", show_default=False)] = None,
        num_gen: Annotated[int | None, typer.Option("--num-gen", help="With --metrics: generated images per blend for names without a count.", show_default=False)] = None,
    ) -> None:
        from stylekit.edit.blend import BlendConfig, run_blend

        cfg = BlendConfig(
            base=base, finetuned=finetuned, out=out, swap_res=parse_int_list(swap_res, "--swap-res"), blend_width=blend_width, structure=structure,
            preview_seeds=parse_int_list(preview_seeds, "--preview-seeds") if preview_seeds.strip() else [],
            trunc=trunc, device=device, metrics=[m.strip() for m in metrics.split(",") if m.strip()] if metrics else None,
            ref=ref, num_gen=num_gen,
        )
        result = run_blend(cfg)
        render(result, table=_blend_tables)


def _blend_tables(r: Any) -> list[Table]:
    tables = [fields("blend-layers", [
        ["network" if not r.sweep or len(r.sweep) == 1 else "folder", r.out], ["preview", r.preview or "-"],
        ["swap_res", r.swap_res], ["blend_width", r.blend_width if r.blend_width is not None else "hard"],
        ["structure", r.structure], ["seconds", r.seconds]])]
    if r.sweep:
        names = list(dict.fromkeys(k for e in r.sweep for k in e.get("metrics", {})))
        tables.append(Table("swap resolutions", ["swap_res", *names, "network"],
                            [[e["swap_res"], *[e.get("metrics", {}).get(n, "-") for n in names], e["out"]] for e in r.sweep]))
    return tables
