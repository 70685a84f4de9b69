"""StyleGAN3 (NVlabs stylegan3 compatible, T and R configs) generator in pure PyTorch; loaded by
stylekit.nets.stylegan2.load like every StyleGAN network."""

from stylekit.nets.stylegan3.networks import Generator

__all__ = ["Generator"]
