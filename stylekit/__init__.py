"""stylekit: one command-line toolkit for studying and making image style."""

__version__ = "0.1.0"
