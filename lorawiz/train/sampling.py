"""Length-grouped batches whose order depends only on the seed and the epoch, so a resumed run sees the same batches.

transformers' LengthGroupedSampler draws its permutation from the global torch generator, whose state differs
between a fresh run and one resumed from a checkpoint (and may differ between processes): the resumed run would
train on other batches. Here every epoch's order comes from a generator seeded with seed + epoch; the Trainer calls
set_epoch at the start of each epoch (resumed ones included).
"""

from __future__ import annotations

from typing import Any


def seeded_length_grouped_sampler(lengths: list[int], batch_size: int, seed: int) -> Any:
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

    class SeededLengthGroupedSampler(LengthGroupedSampler):
        def __init__(self) -> None:
            super().__init__(batch_size, lengths=lengths)
            self.seed = seed
            self.epoch = 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self):
            generator = torch.Generator()
            generator.manual_seed(self.seed + self.epoch)
            return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))

    return SeededLengthGroupedSampler()


def sft_trainer_class() -> type:
    """TRL's SFTTrainer, with `train_sampling_strategy="group_by_length"` served by the seeded sampler."""
    from trl import SFTTrainer

    class LorawizSFTTrainer(SFTTrainer):
        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            if self.args.train_sampling_strategy != "group_by_length" or dataset is None \
                    or "input_ids" not in getattr(dataset, "column_names", ()):
                return super()._get_train_sampler(train_dataset)
            given = self.train_dataset
            carries = "length" in getattr(given, "column_names", ()) and len(given) == len(dataset)
            lengths = _lengths(given if carries else dataset)
            batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
            return seeded_length_grouped_sampler(lengths, batch, self.args.data_seed or self.args.seed)

    return LorawizSFTTrainer


def _lengths(dataset: Any) -> list[int]:
    """Each row's length: the `length` column lorawiz's data views carry (the Trainer drops it from the copy it
    passes here, so it is read from the dataset as given), else counted from input_ids in Arrow, not in Python."""
    if "length" in dataset.column_names:
        return dataset.select_columns(["length"]).with_format("numpy")[:]["length"].tolist()
    import pyarrow.compute as pc

    ids = dataset.select_columns(["input_ids"]).with_format("arrow")[:]["input_ids"]
    return pc.list_value_length(ids).to_pylist()
