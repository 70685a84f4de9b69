"""StyleGAN2 (NVlabs stylegan2-ada-pytorch compatible) networks in pure PyTorch, and their loaders."""

from stylekit.nets.stylegan2.networks import Discriminator, Generator, freezed_layers

__all__ = ["Discriminator", "Generator", "freezed_layers"]
