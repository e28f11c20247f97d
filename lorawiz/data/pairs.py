"""Preference pairs tokenised for TRL's DPOTrainer, once, into lorawiz's tokenised cache (lorawiz.data.tokenize).

Each canonical pair (lorawiz.data.preference) becomes prompt_ids, chosen_ids and rejected_ids as TRL's own
DPOTrainer._prepare_dataset makes them (trl 1.14-1.16): the chat template of the prompt with the generation prompt,
of prompt + chosen and of prompt + rejected; the answers start where the tokenised prompt and each whole
conversation part (usually right after the prompt). The trainer then takes these columns as they are
(lorawiz.train.sampling), so a run tokenises its pairs once, on every core, cached by content like any other data.

Beside them, the columns the plan and the views read: length (prompt + the longer answer: the longest sequence the
pair puts in a batch), first_trained (the prompt's length), trained (both answers' tokens) and group (the prompt's
stable key, so the hold-out split keeps pairs of one prompt on one side).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

PAIR_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count


def encode_pairs(tokenizer: Any, rows: Sequence[Mapping[str, Any]]) -> list[tuple[list[int], list[int], list[int]]]:
    """(prompt_ids, chosen_ids, rejected_ids) of each canonical pair, the chat template applied batch by batch."""
    if not rows:
        return []
    prompts = [list(row["prompt"]) for row in rows]
    texts = list(tokenizer.apply_chat_template(prompts, tokenize=False, add_generation_prompt=True))
    for side in ("chosen", "rejected"):
        texts += tokenizer.apply_chat_template([prompt + list(row[side]) for prompt, row in zip(prompts, rows,
                                                                                                  strict=True)],
                                               tokenize=False)
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]  # as apply_chat_template(tokenize=True)
    count = len(rows)
    out = []
    for k in range(count):
        prompt, chosen, rejected = ids[k], ids[count + k], ids[2 * count + k]
        start = min(_common_prefix(prompt, chosen), _common_prefix(prompt, rejected))
        out.append((prompt[:start], chosen[start:], rejected[start:]))
    return out


def pair_features() -> Any:
    from datasets import Features, Sequence, Value

    return Features({"prompt_ids": Sequence(Value("int32")), "chosen_ids": Sequence(Value("int32")),
                     "rejected_ids": Sequence(Value("int32")), "length": Value("int32"),
                     "first_trained": Value("int32"), "trained": Value("int32"), "group": Value("int64")})


def encode_pair_batch(batch: dict[str, list], tokenizer: Any) -> Any:
    """One batch of canonical pairs as JSON text (runs in each worker) -> a pyarrow table of the pair columns."""
    import pyarrow as pa

    from lorawiz.data.dedupe import stable_key

    rows = [json.loads(text) for text in batch["row"]]
    encoded = encode_pairs(tokenizer, rows)
    columns = {name: pa.array([pair[i] for pair in encoded], pa.list_(pa.int32()))
               for i, name in enumerate(PAIR_COLUMNS)}
    prompt = [len(p) for p, _, _ in encoded]
    return pa.table({**columns,
                     "length": pa.array([len(p) + max(len(c), len(r)) for p, c, r in encoded], pa.int32()),
                     "first_trained": pa.array(prompt, pa.int32()),
                     "trained": pa.array([len(c) + len(r) for _, c, r in encoded], pa.int32()),
                     "group": pa.array([stable_key({"messages": row["prompt"]}) for row in rows], pa.int64())})


def with_kl_answers(collate: Any) -> Any:
    """TRL's KTO collator, given each row's KL answer as TRL's KTOTrainer._prepare_dataset makes it (trl 1.14-1.16):
    the answers rotated by one within the batch, (x_1, y_n), (x_2, y_1), ..., (x_n, y_{n-1}), so each prompt is
    scored with another row's answer for the KL estimate."""

    def collated(examples: list[dict[str, Any]]) -> Any:
        answers = [example["completion_ids"] for example in examples]
        rotated = [answers[-1], *answers[:-1]]
        return collate([{**example, "KL_completion_ids": kl} for example, kl in zip(examples, rotated, strict=True)])

    return collated
