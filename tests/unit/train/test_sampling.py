"""The seeded length-grouped sampler: the same batches for the same seed and epoch, whatever the global RNG did."""

from __future__ import annotations

import random

import torch

from lorawiz.train.sampling import seeded_length_grouped_sampler

_RNG = random.Random(0)
LENGTHS = [int(_RNG.lognormvariate(4.5, 0.9)) + 1 for _ in range(1000)]


def order(epoch: int, seed: int = 42) -> list[int]:
    sampler = seeded_length_grouped_sampler(LENGTHS, batch_size=16, seed=seed)
    sampler.set_epoch(epoch)
    return list(sampler)


def test_order_depends_on_seed_and_epoch_only():
    first = order(0)
    torch.manual_seed(1234)  # the global generator moved on, as it does in a resumed run
    torch.rand(10)
    assert order(0) == first
    assert order(1) != first and order(0, seed=7) != first
    assert sorted(first) == list(range(len(LENGTHS)))  # every row once


def test_batches_hold_rows_of_similar_length():
    def padding(indices: list[int]) -> float:
        batches = [indices[i:i + 16] for i in range(0, len(indices), 16)]
        positions = sum(max(LENGTHS[i] for i in b) * len(b) for b in batches)
        return 1 - sum(LENGTHS) / positions

    shuffled = list(range(len(LENGTHS)))
    random.Random(1).shuffle(shuffled)
    assert padding(order(0)) < padding(shuffled) / 2  # 25% against 72% on these lengths


def test_the_numpy_grouping_orders_rows_as_transformers_does():
    import numpy as np
    from transformers.trainer_pt_utils import get_length_grouped_indices

    from lorawiz.train.sampling import grouped_indices

    for count, batch, seed in ((1000, 16, 0), (37, 4, 3), (5000, 64, 9), (3, 8, 1)):
        lengths = [int(random.Random(seed + i).lognormvariate(4, 1)) % 50 + 1 for i in range(count)]  # many ties
        generator = torch.Generator()
        generator.manual_seed(seed)
        expected = get_length_grouped_indices(lengths, batch, generator=generator)
        assert grouped_indices(np.array(lengths), batch, seed).tolist() == expected
