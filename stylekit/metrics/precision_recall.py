"""Improved precision and recall (Kynkäänniemi et al. 2019), as NVlabs' `pr50k3_full` computes it.

Each set's manifold is the union of balls around its feature vectors, each ball's radius the distance
to the vector's k-th nearest neighbour within the set (itself excluded). Precision = the fraction of
generated vectors inside the real manifold; recall = the fraction of real vectors inside the generated
manifold. Distances are Euclidean, computed in row blocks with torch.cdist so 50k x 200k never sits in
memory at once; everything runs on the device of the inputs. stylekit keeps the features in float32
(NVlabs casts them to float16), so ties at the ball boundary may resolve differently in rare cases.
"""

from __future__ import annotations

import torch

from stylekit.errors import BadInput


def kth_neighbour_radii(manifold: torch.Tensor, k: int, block: int = 1024) -> torch.Tensor:
    """Distance from each row to its k-th nearest other row of `manifold` ([N] float32)."""
    if not 1 <= k < manifold.shape[0]:
        raise BadInput(f"precision/recall: k = {k} needs more than k images per set, got {manifold.shape[0]}",
                       hint="generate or provide more images, or pick a smaller k (e.g. pr50k3 -> k = 3)")
    radii = [torch.cdist(rows, manifold).kthvalue(k + 1, dim=1).values for rows in manifold.split(block)]
    return torch.cat(radii)


def inside_manifold(probes: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor, block: int = 1024) -> torch.Tensor:
    """For each probe row: is it within radii[j] of some manifold row j ([P] bool)."""
    return torch.cat([(torch.cdist(rows, manifold) <= radii[None, :]).any(dim=1) for rows in probes.split(block)])


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3, block: int = 1024) -> tuple[float, float]:
    """(precision, recall) of `fake` features against `real` features ([N, D] each, same device)."""
    real, fake = real.float(), fake.float()
    precision = inside_manifold(fake, real, kth_neighbour_radii(real, k, block), block).double().mean()
    recall = inside_manifold(real, fake, kth_neighbour_radii(fake, k, block), block).double().mean()
    return float(precision), float(recall)
