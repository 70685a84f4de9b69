"""Inception score (Salimans et al. 2016) as NVlabs' `is50k`: exp(E_x KL(p(y|x) || p(y))) over 10 splits.

p(y|x) is the softmax of the FID Inception's 1008-way logits, taken *without* the output bias as the
original TF implementation does (NVlabs: `no_output_bias=True`); p(y) is the mean of p(y|x) within
each split. Returns the mean and the standard deviation over the splits. Computed in float64.
"""

from __future__ import annotations

import torch

from stylekit.errors import BadInput


def inception_score(logits: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """(mean, std) of the Inception score of `logits` [N, classes] over `splits` consecutive splits."""
    n = logits.shape[0]
    if splits < 1 or n < splits:
        raise BadInput(f"Inception score: {n} images cannot be cut into {splits} splits", hint="generate more images")
    log_p = torch.log_softmax(logits.double(), dim=1)
    scores = []
    for i in range(splits):
        part = log_p[i * n // splits : (i + 1) * n // splits]
        log_marginal = torch.logsumexp(part, dim=0) - torch.log(torch.tensor(float(part.shape[0]), dtype=torch.float64, device=part.device))
        kl = (part.exp() * (part - log_marginal)).sum(dim=1).mean()
        scores.append(kl.exp())
    s = torch.stack(scores)
    return float(s.mean()), float(s.std(unbiased=False))
