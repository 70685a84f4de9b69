"""Image discovery and safe decoding, download sources, prepare/export, datasets, toy-styles."""
