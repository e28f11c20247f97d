"""Length-grouped batches whose order depends only on the seed and the epoch, so a resumed run sees the same batches.

transformers' LengthGroupedSampler draws its permutation from the global torch generator, whose state differs
between a fresh run and one resumed from a checkpoint (and may differ between processes): the resumed run would
train on other batches. Here every epoch's order comes from a generator seeded with seed + epoch; the Trainer calls
set_epoch at the start of each epoch (resumed ones included).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def seeded_length_grouped_sampler(lengths: Any, batch_size: int, seed: int) -> Any:
    from transformers.trainer_pt_utils import LengthGroupedSampler

    lengths = np.asarray(lengths, dtype=np.int64)

    class SeededLengthGroupedSampler(LengthGroupedSampler):
        def __init__(self) -> None:  # not LengthGroupedSampler's: it would copy the lengths into a Python list
            self.batch_size, self.lengths, self.generator = batch_size, lengths, None
            self.seed = seed
            self.epoch = 0

        def __len__(self) -> int:
            return len(self.lengths)

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self):
            return iter(grouped_indices(self.lengths, self.batch_size, self.seed + self.epoch).tolist())

    return SeededLengthGroupedSampler()


def grouped_indices(lengths: Any, batch_size: int, seed: int) -> Any:
    """transformers' get_length_grouped_indices in numpy, with the same result for the same torch seed: a random
    permutation, cut into mega-batches of 50 batches (or a quarter of the data), each sorted longest first, with
    the mega-batch holding the longest row put first. In Python it took seconds per million rows."""
    import torch

    generator = torch.Generator()
    generator.manual_seed(seed)
    count = len(lengths)
    mult = min(count // (batch_size * 4), 50) or 1
    indices = torch.randperm(count, generator=generator).numpy()
    size = mult * batch_size
    batches = []
    for start in range(0, count, size):
        chunk = indices[start:start + size]
        batches.append(chunk[np.argsort(-lengths[chunk], kind="stable")])  # as sorted(..., reverse=True)
    maximums = np.array([lengths[batch[0]] for batch in batches])
    top = int(np.argmax(maximums))  # the first of the largest, as torch.argmax
    batches[0][0], batches[top][0] = batches[top][0], batches[0][0]
    return np.concatenate(batches) if batches else np.array([], dtype=np.int64)


def sft_trainer_class(lengths: Any = None) -> type:
    """TRL's SFTTrainer, with `train_sampling_strategy="group_by_length"` served by the seeded sampler.

    `lengths` are the training rows' lengths as lorawiz's data view knows them (numpy); without them they are
    counted from input_ids in Arrow.
    """
    from trl import SFTTrainer

    return _lorawiz_trainer(SFTTrainer, lengths)


def dpo_trainer_class(lengths: Any = None) -> type:
    """TRL's DPOTrainer, as sft_trainer_class serves it, taking lorawiz's tokenised pairs (lorawiz.data.pairs) as
    they are: its _prepare_dataset would look for the text columns and tokenise again."""
    from trl import DPOTrainer

    class LorawizDPOTrainer(_lorawiz_trainer(DPOTrainer, lengths)):
        def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
            from lorawiz.data.pairs import PAIR_COLUMNS

            if set(PAIR_COLUMNS) <= set(getattr(dataset, "column_names", ())):
                return dataset  # lorawiz.data.view.pair_view dropped the pairs TRL drops
            return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

    return LorawizDPOTrainer


def kto_trainer_class(lengths: Any = None) -> type:
    """TRL's KTOTrainer, as sft_trainer_class serves it, taking lorawiz's unpaired rows (lorawiz.data.pairs) as they
    are, and giving each row its KL answer in the collator, as TRL's _prepare_dataset would have."""
    from trl import KTOTrainer

    class LorawizKTOTrainer(_lorawiz_trainer(KTOTrainer, lengths)):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if self.calculate_KL:
                from lorawiz.data.pairs import with_kl_answers

                self.data_collator = with_kl_answers(self.data_collator)

        def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
            if {"prompt_ids", "completion_ids", "label"} <= set(getattr(dataset, "column_names", ())):
                return dataset  # lorawiz.data.view.pair_view unpaired them and dropped the rows TRL drops
            return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

    return LorawizKTOTrainer


def orpo_trainer_class(lengths: Any = None) -> type:
    """TRL's ORPOTrainer (trl.experimental in TRL 1.x), as sft_trainer_class serves it, taking lorawiz's tokenised
    pairs: its tokenize_row builds its sequences from them, cut at max_length from the start as DPO's collator cuts
    them (the plan's figures), instead of tokenising text with rules of its own."""
    from trl.experimental.orpo import ORPOTrainer

    from lorawiz.data.masking import IGNORE_INDEX

    class LorawizORPOTrainer(_lorawiz_trainer(ORPOTrainer, lengths)):
        def tokenize_row(self, feature: dict[str, Any], model: Any = None) -> dict[str, Any]:
            if "prompt_ids" not in feature:
                return super().tokenize_row(feature, model)
            prompt = list(feature["prompt_ids"])
            row = {"prompt_input_ids": prompt, "prompt_attention_mask": [1] * len(prompt)}
            for side in ("chosen", "rejected"):
                ids = (prompt + list(feature[f"{side}_ids"]))[: self.max_length]
                row |= {f"{side}_input_ids": ids, f"{side}_attention_mask": [1] * len(ids),
                        f"{side}_labels": [IGNORE_INDEX] * len(prompt) + ids[len(prompt):]}
            return row

    return LorawizORPOTrainer


def preference_trainer_class(method: str, lengths: Any = None) -> type:
    """The trainer of a preference method (dpo, kto, orpo), as lorawiz serves it."""
    return {"dpo": dpo_trainer_class, "kto": kto_trainer_class, "orpo": orpo_trainer_class}[method](lengths)


def trainer_class(lengths: Any = None) -> type:
    """transformers' Trainer (a sequence-classification head trains with it), as sft_trainer_class serves it."""
    from transformers import Trainer

    return _lorawiz_trainer(Trainer, lengths)


def _lorawiz_trainer(base: type, lengths: Any) -> type:
    class LorawizSFTTrainer(base):
        def create_accelerator_and_postprocess(self) -> None:
            super().create_accelerator_and_postprocess()
            from lorawiz.train.distributed import accept_indexed_cpu_locations, fsdp_on_cpu_processes

            fsdp_on_cpu_processes(self)
            if self.args.device.type == "cpu" and self.args.world_size > 1:
                accept_indexed_cpu_locations()

        def _save_checkpoint(self, model: Any, trial: Any) -> None:
            super()._save_checkpoint(model, trial)
            from lorawiz.train.distributed import point_to_best_after_sharded_save

            point_to_best_after_sharded_save(self)

        def _get_eval_sampler(self, eval_dataset: Any) -> Any:
            """Rows without input_ids (preference pairs) in file order: transformers' length grouping looks for
            input_ids. As transformers evaluates without grouping: one process in order, several as accelerate
            shards."""
            if eval_dataset is None or "input_ids" in getattr(eval_dataset, "column_names", ("input_ids",)):
                return super()._get_eval_sampler(eval_dataset)
            from torch.utils.data import SequentialSampler

            return SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None

        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            known = lengths is not None and dataset is not None and len(lengths) == len(dataset)
            if self.args.train_sampling_strategy != "group_by_length" or dataset is None \
                    or not (known or "input_ids" in getattr(dataset, "column_names", ())):
                return super()._get_train_sampler(train_dataset)
            batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
            return seeded_length_grouped_sampler(lengths if known else _lengths(dataset), batch,
                                                 self.args.data_seed or self.args.seed)

    return LorawizSFTTrainer


def _lengths(dataset: Any) -> Any:
    """Each row's length, counted from input_ids in Arrow (not in Python)."""
    import pyarrow.compute as pc

    ids = dataset.select_columns(["input_ids"]).with_format("arrow")[:]["input_ids"]
    return pc.list_value_length(ids).to_numpy()
