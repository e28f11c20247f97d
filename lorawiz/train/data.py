"""The run's data: files tokenised once into the cache (lorawiz.data.tokenize), then held out and truncated as the
configuration says, as memory-mapped datasets.

Under DDP or on several machines, the first process of each machine (local rank 0) tokenises while the others
wait for its cache entry, then they all read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lorawiz.errors import LorawizError, format_bytes


@dataclass
class RunData:
    """The tokenizer and the tokenised files, before the plan fixes max_seq_length."""

    tokenizer: Any
    train: Any  # TokenisedFile
    validation: Any  # TokenisedFile of validation_file, or None

    def cache_note(self) -> str:
        """One line for the plan: where the tokenised data is and whether it came from the cache."""
        parts = [self.train] + ([self.validation] if self.validation is not None else [])
        size = sum(part.size_bytes for part in parts)
        if all(part.hit for part in parts):
            how = "cached"
        else:
            built = [part for part in parts if not part.hit]
            seconds = sum(part.seconds for part in built)
            processes = max(part.processes for part in built)
            how = f"tokenised now in {seconds:.1f} s on {processes} process{'es' if processes > 1 else ''}"
        return f"tokenised data: {how}, {format_bytes(size)} ({parts[0].entry.parent.parent})"


@dataclass
class PreparedData:
    tokenizer: Any
    train: Any  # datasets.Dataset of input_ids / labels (/ length, for length-grouped batches)
    eval: Any  # the same for validation, or None when the run does not evaluate
    stats: dict[str, Any]
    first: dict[str, list[int]]
    cache_entry: Any = None  # the training file's folder in the tokenised cache
    train_lengths: Any = None  # numpy: the training rows' lengths, for length-grouped batches


def load_run_data(cfg: Any, world_size: int = 1, say: Any = None, progress: bool = False) -> RunData:
    """Load the tokenizer and tokenise the data files (or read them from the cache); bad rows fail here, with
    their line numbers, before any model loads."""
    from lorawiz.builtin import local_path
    from lorawiz.data.cache import default_cache_root
    from lorawiz.data.formats import ConvertOptions
    from lorawiz.data.masking import ensure_chat_template
    from lorawiz.data.tokenize import tokenise_file
    from lorawiz.data.tokens import load_tokenizer

    data = cfg.data
    tokenizer = load_tokenizer(local_path(cfg.model.model_name_or_path),
                               trust_remote_code=cfg.model.trust_remote_code, cache_dir=cfg.model.cache_dir)
    ensure_chat_template(tokenizer)
    root = default_cache_root(data.dataset_cache_dir, cfg.model.cache_dir)
    first = _first_on_this_machine(world_size)

    pairs = cfg.training.method != "sft"  # preference pairs (lorawiz.data.pairs)
    opts = ConvertOptions(system=data.system_prompt, preference=pairs)

    def tokenised(path: str) -> Any:
        if pairs:
            check_pairs(local_path(path), opts, cfg.training.method)
        return tokenise_file(local_path(path), tokenizer, opts=opts,
                             assistant_only=data.assistant_only_loss, cache_root=root, say=say, progress=progress,
                             build=first)

    train = tokenised(data.train_file)
    validation = tokenised(data.validation_file) if data.validation_file else None
    return RunData(tokenizer, train, validation)


def check_pairs(path: str, opts: Any, method: str) -> None:
    """A preference method's data must be chosen/rejected pairs: a file of conversations is refused before any
    tokenising, naming its shape."""
    from pathlib import Path

    from lorawiz.data.convert import resolve_shape
    from lorawiz.data.formats import PREFERENCE

    shape, why = resolve_shape(Path(path), opts)
    if shape != PREFERENCE:
        raise LorawizError(f"{path}: --method {method} learns from preference pairs (chosen and rejected answers), "
                           f"but this file holds {shape} rows ({why}).",
                           hint="Give a file of pairs (`lorawiz format --help` lists the shapes read), or train "
                                "it with --method sft.")


def _first_on_this_machine(world_size: int) -> bool:
    """Whether this process builds the cache: the only one, or local rank 0 of a distributed launch (as
    accelerate's local_main_process_first, but waiting on the cache entry rather than on a collective, whose
    timeout a long tokenisation could outlast)."""
    import os

    return world_size <= 1 or int(os.environ.get("LOCAL_RANK", "0")) == 0


def prepare_data(cfg: Any, run: RunData) -> PreparedData:
    """The training and validation datasets at the planned max_seq_length: views on the tokenised files."""
    from lorawiz.data.formats import PREFERENCE
    from lorawiz.data.view import holdout, pair_view, training_view
    from lorawiz.train.args import planned

    data = cfg.data
    evaluating = cfg.logging.eval_strategy != "no"
    max_len = planned(cfg, "max_seq_length")
    train_idx, val = None, None
    unpaired = cfg.training.seed if cfg.training.method == "kto" else None  # KTO: each answer a row of its own

    def view(tokenised: Any, indices: Any, length: int) -> Any:  # the validation side's
        if tokenised.shape == PREFERENCE:
            return pair_view(tokenised, indices, length, unpaired_seed=unpaired)
        return training_view(tokenised, indices, length, name="validation")

    if run.validation is not None and evaluating:
        val = view(run.validation, None, max_len)
    elif evaluating and data.val_split > 0:
        train_idx, val_idx = holdout(run.train, data.val_split, cfg.training.seed)
        val = view(run.train, val_idx, max_len)
    if run.train.shape == PREFERENCE:
        return _prepared_pairs(run, train_idx, val, max_len, evaluating, unpaired)
    train = training_view(run.train, train_idx, max_len, name="train")
    if not train.rows:
        raise LorawizError("no training example has an answer token left within max_seq_length.",
                           hint="Raise --max-seq-length, or check that rows end with an assistant answer.")
    if evaluating and not (val and val.rows):
        raise LorawizError(f"no validation example has an answer token left within max_seq_length "
                           f"{max_len}, so the run cannot evaluate.",
                           hint="Raise --max-seq-length, give other --val-data, or set eval_strategy: no.")
    stats = {"train_rows": train.rows, "val_rows": val.rows if val else 0, "truncated": train.truncated,
             "dropped": train.dropped, "trained_tokens": train.trained_tokens, "total_tokens": train.total_tokens}
    train_set = train.dataset
    if planned(cfg, "packing"):
        train_set = train_set.remove_columns(["length"])  # packing makes its own rows
    first = train.dataset[0]
    first = {"input_ids": first["input_ids"], "labels": first["labels"]}
    eval_set = val.dataset.remove_columns(["length"]) if val else None
    if data.head == "sequence":  # the prompt and its label's index (lorawiz.train.head)
        from lorawiz.train.head import head_dataset

        labels = planned(cfg, "labels")
        train_set = head_dataset(train.dataset, run.tokenizer, labels, "training")
        eval_set = head_dataset(val.dataset, run.tokenizer, labels, "validation") if val else None
        return PreparedData(run.tokenizer, train_set, eval_set, stats, first, run.train.entry, None)
    return PreparedData(run.tokenizer, train_set, eval_set, stats, first, run.train.entry, train.lengths)


def _prepared_pairs(run: RunData, train_idx: Any, val: Any, max_len: int, evaluating: bool,
                    unpaired_seed: int | None) -> PreparedData:
    """Preference pairs as DPOTrainer takes them (lorawiz.data.view.pair_view), or, with `unpaired_seed`, as KTO's
    rows: each answer a row of its own, shuffled once with the seed."""
    from lorawiz.data.masking import IGNORE_INDEX
    from lorawiz.data.view import pair_view

    train = pair_view(run.train, train_idx, max_len)
    if not train.rows:
        raise LorawizError(f"every training pair's prompt fills max_seq_length {max_len}: no answer token is left.",
                           hint="Raise --max-seq-length.")
    if evaluating and not (val and val.rows):
        raise LorawizError(f"every validation pair's prompt fills max_seq_length {max_len}, so the run cannot "
                           "evaluate.", hint="Raise --max-seq-length, give other --val-data, or set eval_strategy: no.")
    first = train.dataset[0]
    first = {"input_ids": first["prompt_ids"] + first["chosen_ids"],
             "labels": [IGNORE_INDEX] * len(first["prompt_ids"]) + first["chosen_ids"]}
    train_set, eval_set, lengths = train.dataset, val.dataset if val else None, train.lengths
    if unpaired_seed is not None:  # KTO reads its rows in sequence: no length grouping
        train_set, lengths = pair_view(run.train, train_idx, max_len, unpaired_seed=unpaired_seed).dataset, None
    stats = {"train_rows": len(train_set), "val_rows": len(eval_set) if eval_set is not None else 0,
             "truncated": train.truncated, "dropped": train.dropped, "trained_tokens": train.trained_tokens,
             "total_tokens": train.total_tokens}
    return PreparedData(run.tokenizer, train_set, eval_set, stats, first, run.train.entry, lengths)
