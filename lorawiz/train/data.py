"""The run's data: rows read and held out as the configuration says, tokenised with the loss mask, as datasets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lorawiz.errors import LorawizError


@dataclass
class PreparedData:
    tokenizer: Any
    train: Any  # datasets.Dataset of input_ids / labels
    eval: Any  # the same for validation, or None when the run does not evaluate
    stats: dict[str, Any]
    first: dict[str, list[int]]


def prepare_data(cfg: Any) -> PreparedData:
    from datasets import Dataset

    from lorawiz.builtin import local_path
    from lorawiz.data.formats import ConvertOptions
    from lorawiz.data.masking import ensure_chat_template, tokenize_rows
    from lorawiz.data.rows import holdout_split, read_rows
    from lorawiz.data.tokens import load_tokenizer
    from lorawiz.train.args import planned

    data = cfg.data
    opts = ConvertOptions(system=data.system_prompt)
    rows = read_rows(local_path(data.train_file), opts)
    evaluating = cfg.logging.eval_strategy != "no"
    val_rows: list = []
    if data.validation_file and evaluating:
        val_rows = read_rows(local_path(data.validation_file), opts)
    elif evaluating and data.val_split > 0:
        rows, val_rows = holdout_split(rows, data.val_split, cfg.training.seed)
    tokenizer = load_tokenizer(local_path(cfg.model.model_name_or_path),
                               trust_remote_code=cfg.model.trust_remote_code, cache_dir=cfg.model.cache_dir)
    ensure_chat_template(tokenizer)
    max_len = planned(cfg, "max_seq_length")
    train = tokenize_rows(tokenizer, rows, max_len, data.assistant_only_loss)
    val = tokenize_rows(tokenizer, val_rows, max_len, data.assistant_only_loss) if val_rows else None
    if not train.examples:
        raise LorawizError("no training example has an answer token left within max_seq_length.",
                           hint="Raise --max-seq-length, or check that rows end with an assistant answer.")
    if evaluating and not (val and val.examples):
        raise LorawizError(f"no validation example has an answer token left within max_seq_length "
                           f"{max_len}, so the run cannot evaluate.",
                           hint="Raise --max-seq-length, give other --val-data, or set eval_strategy: no.")
    stats = {"train_rows": len(train.examples), "val_rows": len(val.examples) if val else 0,
             "truncated": train.truncated, "dropped": train.dropped, "trained_tokens": train.trained_tokens,
             "total_tokens": train.total_tokens}
    return PreparedData(tokenizer, Dataset.from_list(train.examples),
                        Dataset.from_list(val.examples) if val else None, stats, train.examples[0])
