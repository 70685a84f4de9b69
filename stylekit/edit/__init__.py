"""Image editing with generative networks: generate, style mixing/interpolation, layer blending.

Each command has one library entry point taking a typed config and returning a result dataclass:
`run_generate`, `run_mix`, `run_interpolate`, `run_blend`. Latent files: `stylekit.edit.latents`.
"""
