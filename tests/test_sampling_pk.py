"""P x K batches for any class count and process count (derive_pk + BalancedBatchSampler)."""

import math

import pytest

from stylekit.data.sampling import BalancedBatchSampler, derive_pk
from stylekit.errors import BadInput


@pytest.mark.parametrize("world", [1, 2, 8])
@pytest.mark.parametrize("classes", [2, 3, 5, 7, 8, 12])
@pytest.mark.parametrize("batch", [64, 30])
def test_pk_batches_split_evenly_over_ranks(batch, classes, world):
    p, k = derive_pk(batch, classes, None, None, world)
    top = min(classes, batch // 4)
    assert (p == top if batch == 64 else 1 <= p <= top) and k >= 2
    assert (p * k) % world == 0
    assert batch - math.lcm(p, world) < p * k <= batch  # as near --batch as the process count allows
    labels = [i % classes for i in range(10 * classes)]
    ranks = [BalancedBatchSampler(labels, p, k, seed=0, world_size=world, rank=r) for r in range(world)]
    shares = [next(iter(s)) for s in ranks]
    assert {len(s) for s in shares} == {p * k // world}
    assert sorted(i for s in shares for i in s) == sorted(ranks[0].global_batches()[0])
    assert len({labels[i] for s in shares for i in s}) == p


def test_given_k_picks_the_classes_that_split():
    assert derive_pk(64, 7, None, 3, 2) == (6, 3)
    p, k = derive_pk(64, 7, None, 3, 8)  # no P <= 7 makes 3P a multiple of 8: the sampler says so
    with pytest.raises(BadInput, match="not divisible by the 8 processes"):
        BalancedBatchSampler(list(range(7)) * 4, p, k, world_size=8, rank=0)


def test_tiny_batch_on_many_processes_still_splits():
    assert derive_pk(4, 3, None, None, 8) == (1, 8)  # 4 images cannot split over 8 ranks: the smallest batch that does
