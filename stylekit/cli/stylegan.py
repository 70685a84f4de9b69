"""StyleGAN2 and StyleGAN3 commands: generate, mix (style mixing / interpolation), blend-layers (toonify)."""

from typing import Any

import typer

from stylekit.cli.common import Table, command, fields, render
from stylekit.configs.stylegan import BlendConfig, GenerateConfig, MixConfig

ORDER = 60

_RERUN = ("Rerunning into the same --out with the same options skips the work and says so; other options are refused "
          "(exit 2) unless --fresh. --network random:RES is a random-init stand-in for trying the command offline.")


def _standins(r: Any) -> list[list[Any]]:
    return [["stand-in", s] for s in r.standins]


def register(app: typer.Typer) -> None:
    @command(
        app,
        "generate",
        help="Generate images (and their w latents) from seeds with a StyleGAN2 or StyleGAN3 network.",
        examples=["stylekit generate --network random:64 --seeds 0-7 --trunc 0.7 --out gen/",
                  "stylekit generate --network random:64 --seeds 0-3 --noise-mode random --no-grid --out gen-noise/",
                  "stylekit generate --network random:stylegan3:64 --seeds 0-3 --translate 0.25,0 --rotate 10 --out gen-moved/"],
        notes=_RERUN,
        config=GenerateConfig,
    )
    def generate(cfg: GenerateConfig) -> None:
        from stylekit.edit.generate import run_generate

        render(run_generate(cfg), table=lambda r: fields("generate", [
            ["images", len(r.images)], ["resolution", r.resolution], ["out", r.out], ["grid", r.grid or "-"],
            ["latents", r.latents], ["up to date", "yes (nothing redone)" if r.up_to_date else "no"], *_standins(r),
            ["seconds", r.seconds]]))

    @command(
        app,
        "mix",
        help="Style-mixing grid (rows x cols of seeds) or an interpolation GIF between two seeds or latent files.",
        examples=["stylekit mix --network random:64 --rows 85,100 --cols 55,821 --styles 0-6 --out mix/",
                  "stylekit mix --network random:64 --interpolate 1,2 --space w --frames 60 --out interp/"],
        notes=_RERUN,
        config=MixConfig,
    )
    def mix(cfg: MixConfig) -> None:
        if cfg.interpolating:
            from stylekit.edit.mix import run_interpolate

            render(run_interpolate(cfg), table=lambda r: fields("interpolate", [
                ["frames", len(r.frames)], ["space", r.space], ["gif", r.gif],
                ["up to date", "yes (nothing redone)" if r.up_to_date else "no"], *_standins(r), ["seconds", r.seconds]]))
            return
        from stylekit.edit.mix import run_mix

        render(run_mix(cfg), table=lambda r: fields("mix", [
            ["images", len(r.images)], ["styles", ",".join(map(str, r.styles)) or "none"], ["num_ws", r.num_ws],
            ["grid", r.grid], ["up to date", "yes (nothing redone)" if r.up_to_date else "no"], *_standins(r),
            ["seconds", r.seconds]]))

    @command(
        app,
        "blend-layers",
        help="Blend two generators by resolution or layer index (toonify layer swapping) into a new network.",
        examples=["stylekit blend-layers --base random:64 --finetuned random:64 --swap-res 32 --out toonify.safetensors",
                  "stylekit blend-layers --base random:64 --finetuned random:64 --swap-res 8,16,32 --out sweep/",
                  "stylekit blend-layers --base random:stylegan3:64 --finetuned random:stylegan3:64 --swap-layer 2,4,6 "
                  "--out sweep-sg3/"],
        notes=_RERUN + " A sweep (several --swap-res) with --metrics NAME --ref IMAGES scores every blend (as score does).",
        config=BlendConfig,
    )
    def blend_layers(cfg: BlendConfig) -> None:
        from stylekit.edit.blend import run_blend

        render(run_blend(cfg), table=_blend_tables)


def _blend_tables(r: Any) -> list[Table]:
    key = "swap_layer" if r.swap_layer is not None else "swap_res"
    tables = [fields("blend-layers", [
        ["network" if not r.sweep or len(r.sweep) == 1 else "folder", r.out], ["preview", r.preview or "-"],
        [key, getattr(r, key)], ["blend_width", r.blend_width if r.blend_width is not None else "hard"],
        ["structure", r.structure], ["up to date", "yes (nothing redone)" if r.up_to_date else "no"], *_standins(r),
        ["seconds", r.seconds]])]
    if r.sweep:
        names = list(dict.fromkeys(k for e in r.sweep for k in e.get("metrics", {})))
        tables.append(Table("swap layers" if key == "swap_layer" else "swap resolutions", [key, *names, "network"],
                            [[e[key], *[e.get("metrics", {}).get(n, "-") for n in names], e["out"]] for e in r.sweep]))
    return tables
