"""GAN inversion and text edits: `stylekit invert` (NVlabs projector / Image2StyleGAN) and `stylekit styleclip`."""

from pathlib import Path
from typing import Annotated

import typer

from stylekit.cli.common import Table, command, fields, render
from stylekit.cli.vocabulary import option

ORDER = 75


def _invert_table(r: object) -> Table:
    return Table(
        f"invert ({r.space}, {r.loss}, {r.steps} steps)",  # type: ignore[attr-defined]
        ["target", "status", "loss", "PSNR dB", "seconds", "out"],
        [[Path(i.target).name, i.status, "-" if i.final_loss is None else i.final_loss, "-" if i.psnr is None else i.psnr,
          "-" if i.seconds is None else i.seconds, i.out] for i in r.items],  # type: ignore[attr-defined]
    )


def register(app: typer.Typer) -> None:
    @command(
        app,
        "invert",
        help="Embed an image (or a folder of images) in a StyleGAN2 latent space (GAN inversion).",
        examples=["stylekit invert photo.png --network ffhq-256 --out inv/",
                  "stylekit invert faces/ --network ffhq-256 --space w+ --loss vgg --out inv/",
                  "stylekit invert photo.jpg --network ffhq-256 --align ffhq --out inv/",
                  "stylekit invert faces/ --network ffhq-256 --batch 8 --device cuda --out inv/",
                  "stylekit invert photo.png --network ffhq-256 --amp --out inv/"],
        notes="Targets are centre-cropped and Lanczos-resized to the network resolution (with --align ffhq: FFHQ-aligned face crops).",
    )
    def invert(
        target: Annotated[Path, typer.Argument(help="Image file, or a folder (each image goes to OUT/<name>/; done ones are skipped).")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
        network: str = option("network", required=True),
        space: Annotated[str, typer.Option("--space", help="w: one w for all layers (NVlabs projector) | w+: one w per layer (Image2StyleGAN).")] = "w",
        steps: Annotated[int, typer.Option("--steps", help="Optimisation steps.")] = 1000,
        lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (5% rampup, cosine rampdown over the last 25%).")] = 0.1,
        loss: Annotated[str, typer.Option("--loss", help="lpips (LPIPS-VGG16, NVlabs) | vgg (VGG16 conv1_1,conv1_2,conv3_2,conv4_2 + MSE, Image2StyleGAN) | mse.")] = "lpips",
        mse_weight: Annotated[float | None, typer.Option("--mse-weight", help="Weight of the pixel MSE term (default: 0 for lpips, 1 for vgg and mse).")] = None,
        perceptual_weights: str | None = option("vgg_weights", "Local VGG16 state dict for --loss lpips/vgg (offline use); 'random' = untrained (timing only)."),
        noise_reg: Annotated[float, typer.Option("--noise-reg", help="Weight of the noise-map autocorrelation penalty.")] = 1e5,
        initial_noise: Annotated[float, typer.Option("--initial-noise", help="Initial w noise, as a fraction of w_std (ramped to 0 over 75% of the steps).")] = 0.05,
        w_avg_samples: Annotated[int, typer.Option("--w-avg-samples", help="Mapped samples for the starting w_avg and w_std.")] = 10000,
        seed: int = option("seed", "Seed for the noise maps and w noise."),
        save_video: Annotated[bool, typer.Option("--save-video", help="Also write progress.gif (target | projection over the steps).")] = False,
        log_every: Annotated[int, typer.Option("--log-every", min=1, help="Record loss and PSNR every N steps (metrics.json, curve.png).")] = 10,
        fresh: bool = option("fresh", "Redo targets that are already done."),
        device: str = option("device"),
        amp: bool = option("amp"),
        batch: int = option("batch", "Folder mode: project up to N targets at once (each its own latent and noise maps; results equal to single runs up to float rounding; faster on a GPU).", default=1),
        align: Annotated[str | None, typer.Option("--align", help="ffhq: detect the largest face and FFHQ-align it first (what FFHQ networks expect); targets without a face are skipped.")] = None,
        face_detector: Annotated[str, typer.Option("--face-detector", help="--align: face landmark network, a registry name or a local weights file.")] = "retinaface-mobilenet0.25",
    ) -> None:
        from stylekit.edit.invert import InvertConfig, run_invert

        cfg = InvertConfig(
            target=target, network=network, out=out, space=space, steps=steps, lr=lr, loss=loss, mse_weight=mse_weight,
            perceptual_weights=perceptual_weights, noise_reg=noise_reg, initial_noise=initial_noise,
            w_avg_samples=w_avg_samples, seed=seed, save_video=save_video, log_every=log_every, fresh=fresh, device=device,
            align=align, face_detector=face_detector, batch=batch, amp=amp,
        )
        result = run_invert(cfg)
        render(result, table=_invert_table)

    @command(
        app,
        "styleclip",
        help="Edit a StyleGAN2 latent towards a text prompt with CLIP (StyleCLIP latent optimisation).",
        examples=['stylekit styleclip --network ffhq-256 --latent inv/latent.npz --prompt "a smiling face" --out edit/',
                  'stylekit styleclip --network ffhq-256 --latent-seed 12 --prompt "blond hair" --prompt "old age" --out edit/'],
    )
    def styleclip(
        out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
        prompt: Annotated[list[str], typer.Option("--prompt", "-p", help="Text target; repeat for several (one column each).")],
        network: str = option("network", required=True),
        latent: Annotated[Path | None, typer.Option("--latent", help="Start latent .npz (from invert or generate).")] = None,
        latent_index: Annotated[int, typer.Option("--latent-index", help="Row of a latent file that holds several.")] = 0,
        latent_seed: Annotated[int | None, typer.Option("--latent-seed", help="Start from this generator seed's (truncated) w instead of a latent file.")] = None,
        steps: Annotated[int, typer.Option("--steps", help="Optimisation steps (0: return the start image).")] = 300,
        lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (5% rampup, cosine rampdown over the last 25%).")] = 0.1,
        l2_lambda: Annotated[float, typer.Option("--l2-lambda", help="Weight of sum((w - w0)^2) in edit mode.")] = 0.008,
        mode: Annotated[str, typer.Option("--mode", help="edit (CLIP + L2 to the start) | free (CLIP only; starts at w_avg without --latent/--latent-seed).")] = "edit",
        trunc: float = option("trunc", "Truncation psi for --latent-seed (1 = none)."),
        clip_model: Annotated[str, typer.Option("--clip-model", help="open_clip architecture name or a local open_clip model folder.")] = "ViT-B-32",
        clip_weights: Annotated[str | None, typer.Option("--clip-weights", help="Local CLIP weights file (default: the registry's clip-vit-b-32).")] = None,
        log_every: Annotated[int, typer.Option("--log-every", min=1, help="Record CLIP similarity and L2 every N steps.")] = 10,
        device: str = option("device"),
        amp: bool = option("amp"),
    ) -> None:
        from stylekit.edit.styleclip import StyleClipConfig, run_styleclip

        cfg = StyleClipConfig(
            network=network, out=out, prompts=list(prompt), latent=latent, latent_index=latent_index, latent_seed=latent_seed, steps=steps,
            lr=lr, l2_lambda=l2_lambda, mode=mode, trunc=trunc, clip_model=clip_model, clip_weights=clip_weights,
            log_every=log_every, device=device, amp=amp,
        )
        result = run_styleclip(cfg)
        render(result, table=lambda r: fields("styleclip", [
            ["start", r.start], ["mode", r.mode], ["steps", r.steps], ["grid", r.grid],
            *[[p.prompt, f"similarity {p.similarity_before:.4f} -> {p.similarity_after:.4f}, L2 {p.l2:.4g}: {p.edited}"]
              for p in r.prompts],
            ["seconds", r.seconds]]))
