"""Detect a face and align it the FFHQ way: the `--align ffhq` step of prepare and invert.

`FaceAlign` is a small picklable callable (image -> aligned image, ValueError(reason) to skip) so that
prepare's worker processes can run it; each process loads the detector once, on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from stylekit.data.align import align_ffhq
from stylekit.errors import BadInput
from stylekit.nets.retinaface import load_face_detector

DEFAULT_DETECTOR = "retinaface-mobilenet0.25"
ALIGNERS: dict[str, Callable[[Image.Image, np.ndarray, int], Image.Image]] = {"ffhq": align_ffhq}
DEFAULT_ALIGN_SIZE = 1024  # FFHQ's own resolution, when the command gives no --size


@lru_cache(maxsize=2)
def _detector(weights: str, threshold: float):  # noqa: ANN202 - the type lives in nets.retinaface

    return load_face_detector(weights, "cpu", threshold)


@dataclass(frozen=True)
class FaceAlign:
    """Align the largest detected face of an image with method `method` at `size` px."""

    method: str = "ffhq"
    size: int = DEFAULT_ALIGN_SIZE
    detector: str = DEFAULT_DETECTOR  # registry name or a local weights file
    threshold: float = 0.8  # minimum face confidence

    def __post_init__(self) -> None:
        if self.method not in ALIGNERS:
            raise BadInput(f"unknown --align '{self.method}'", hint=f"choose {', '.join(ALIGNERS)}")
        if not 8 <= self.size <= 4096:
            raise BadInput(f"aligned face size {self.size} is out of range", hint="give --size between 8 and 4096")
        if not 0.0 < self.threshold < 1.0:
            raise BadInput(f"--face-threshold {self.threshold} must be between 0 and 1")

    def load(self) -> FaceAlign:
        """Resolve the detector now (downloads, exit 3 offline, exit 2 for a wrong file) so that a
        command fails before its work starts rather than once per image."""
        _detector(self.detector, self.threshold)
        return self

    def landmarks(self, img: Image.Image) -> np.ndarray:
        """[5, 2] landmarks of the largest face; ValueError when there is none."""
        import torch

        faces = _detector(self.detector, self.threshold)(torch.from_numpy(np.array(img.convert("RGB"))))
        if not faces:
            raise ValueError(f"no face found (confidence >= {self.threshold})")
        return np.asarray(faces[0].landmarks, dtype=np.float64)

    def __call__(self, img: Image.Image) -> Image.Image:
        return ALIGNERS[self.method](img, self.landmarks(img), self.size)
