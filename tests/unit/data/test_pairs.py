"""Preference pairs tokenised by lorawiz (lorawiz.data.pairs) exactly as TRL's DPOTrainer tokenises them, cached,
and viewed at max_seq_length as TRL filters them (lorawiz.data.view.pair_view)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from lorawiz.data.pairs import PAIR_COLUMNS, encode_pairs


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from lorawiz.builtin import resolve_builtin
    from lorawiz.data.masking import ensure_chat_template

    loaded = AutoTokenizer.from_pretrained(resolve_builtin("builtin:tiny"))
    ensure_chat_template(loaded)
    return loaded


def pair_rows():
    from lorawiz.builtin.triage import triage_pairs

    rows = triage_pairs("validation")[:12]
    # a multi-turn prompt and answers of different lengths too
    rows.append({"prompt": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                            {"role": "user", "content": "Which category is smoke on a stairwell?"}],
                 "chosen": [{"role": "assistant", "content": "fire, since smoke on a stairwell means a fire"}],
                 "rejected": [{"role": "assistant", "content": "flood"}]})
    return rows


def test_pairs_are_tokenised_as_trl_tokenises_them(tokenizer):
    from datasets import Dataset
    from trl import DPOTrainer

    rows = pair_rows()
    ours = encode_pairs(tokenizer, rows)
    # TRL's own preparation, called as DPOTrainer.__init__ calls it (it reads only these settings of its config)
    args = SimpleNamespace(dataset_num_proc=None, max_length=None, truncation_mode="keep_start")
    theirs = DPOTrainer._prepare_dataset(SimpleNamespace(_tokenizer=tokenizer), Dataset.from_list(rows),
                                         tokenizer, args, "train")
    assert [list(map(list, pair)) for pair in ours] == [[row[c] for c in PAIR_COLUMNS] for row in theirs]
    assert all(chosen and rejected for _, chosen, rejected in ours)


def test_a_pair_file_is_cached_with_the_columns_the_plan_reads(tokenizer, tmp_path):
    from lorawiz.data.formats import ConvertOptions
    from lorawiz.data.tokenize import tokenise_file
    from lorawiz.data.view import pair_view

    rows = pair_rows()
    source = tmp_path / "pairs.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    opts = ConvertOptions(preference=True)
    built = tokenise_file(source, tokenizer, opts=opts, cache_root=tmp_path / "cache")
    again = tokenise_file(source, tokenizer, opts=opts, cache_root=tmp_path / "cache")
    assert built.shape == "preference" and not built.hit and again.hit
    encoded = encode_pairs(tokenizer, rows)
    assert list(built.column("length")) == [len(p) + max(len(c), len(r)) for p, c, r in encoded]
    assert list(built.column("first_trained")) == [len(p) for p, _, _ in encoded]
    longest_prompt = max(len(p) for p, _, _ in encoded)
    whole = pair_view(built, None, max_seq_length=10_000)
    assert whole.rows == len(rows) and whole.dropped == 0 and whole.truncated == 0
    assert whole.dataset.column_names == list(PAIR_COLUMNS)
    # a prompt that fills max_seq_length leaves no answer: the pair is dropped, as TRL drops it
    cut = pair_view(built, None, max_seq_length=longest_prompt)
    assert cut.dropped == sum(len(p) >= longest_prompt for p, _, _ in encoded) >= 1
    assert cut.rows == len(rows) - cut.dropped
    assert cut.truncated == sum(len(p) + max(len(c), len(r)) > longest_prompt for p, c, r in encoded)


def test_the_longer_answer_bounds_a_pair_for_inspect():
    from lorawiz.data.preference import longer_conversation

    pair = {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "short"}],
            "rejected": [{"role": "assistant", "content": "a much longer answer"}]}
    assert longer_conversation(pair)["messages"][-1]["content"] == "a much longer answer"


def write_pairs(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def shared_prompt_pairs():
    """Pairs in two shapes (TRL's prompt/chosen/rejected, orca_dpo_pairs' columns), several for one prompt."""
    rows = []
    for i in range(40):
        for answer in ("first", "second", "third"):
            rows.append({"question": f"question {i}", "chosen": f"good {answer}", "rejected": f"bad {answer}"})
    return rows


def test_split_keeps_the_pairs_of_one_prompt_on_one_side(tmp_path):
    from lorawiz.data.split import SplitSizes, split_file

    source = write_pairs(tmp_path / "pairs.jsonl", shared_prompt_pairs())
    outputs = {"train": tmp_path / "t.jsonl", "val": tmp_path / "v.jsonl"}
    report = split_file(source, outputs, SplitSizes(val_ratio=0.25))
    assert report.pairs == 120 and report.duplicates == 80  # 80 pairs share a prompt with an earlier one
    sides = {side: [json.loads(line)["question"] for line in path.read_text().splitlines()]
             for side, path in outputs.items()}
    assert len(sides["train"]) + len(sides["val"]) == 120 and sides["val"]
    assert not set(sides["train"]) & set(sides["val"])


def test_split_refuses_to_dedupe_pairs(tmp_path):
    from lorawiz.data.split import SplitSizes, split_file
    from lorawiz.errors import LorawizError

    source = write_pairs(tmp_path / "pairs.jsonl", shared_prompt_pairs())
    with pytest.raises(LorawizError, match="--dedupe: .* holds preference pairs"):
        split_file(source, {"train": tmp_path / "t.jsonl", "val": tmp_path / "v.jsonl"}, SplitSizes(val_ratio=0.2),
                   dedupe=True)
    assert not (tmp_path / "t.jsonl").exists()


def test_mix_writes_pairs_as_trls_rows_and_refuses_pairs_with_chat(tmp_path):
    from lorawiz.data.mix import MixSource, mix_files
    from lorawiz.errors import LorawizError

    orca = write_pairs(tmp_path / "orca.jsonl", shared_prompt_pairs())
    trl = write_pairs(tmp_path / "trl.jsonl", pair_rows())
    report = mix_files([MixSource(str(orca), weight=0.5), MixSource(str(trl), weight=0.5)], tmp_path / "mix.jsonl",
                       size=20)
    assert report.total == 20
    written = [json.loads(line) for line in (tmp_path / "mix.jsonl").read_text().splitlines()]
    assert all(set(row) == {"prompt", "chosen", "rejected"} for row in written)
    assert sum(row["prompt"][-1]["content"].startswith("question") for row in written) == 10
    chat = write_pairs(tmp_path / "chat.jsonl", [{"messages": [{"role": "user", "content": "hi"},
                                                               {"role": "assistant", "content": "hello"}]}] * 4)
    with pytest.raises(LorawizError, match="is preference pairs and .* is chat data"):
        mix_files([MixSource(str(orca)), MixSource(str(chat))], tmp_path / "bad.jsonl")


def test_inspect_reads_pairs_as_their_prompt_and_longer_answer(tmp_path):
    from lorawiz.data.formats import ConvertOptions
    from lorawiz.data.stats import inspect_file

    source = write_pairs(tmp_path / "pairs.jsonl", pair_rows())
    stats = inspect_file(source, opts=ConvertOptions(preference=True))
    assert stats.shape == "preference" and stats.rows == len(pair_rows())
    # one answer a pair (the longer), and the multi-turn prompt's earlier assistant turn
    assert stats.roles["assistant"] == len(pair_rows()) + 1 and stats.roles["user"] == len(pair_rows()) + 1
    assert stats.turns["max"] == 4  # the multi-turn prompt and its answer


def test_kto_rows_are_each_pairs_two_answers_shuffled_once(tokenizer, tmp_path):
    from lorawiz.data.formats import ConvertOptions
    from lorawiz.data.tokenize import tokenise_file
    from lorawiz.data.view import pair_view

    rows = pair_rows()
    source = write_pairs(tmp_path / "pairs.jsonl", rows)
    built = tokenise_file(source, tokenizer, opts=ConvertOptions(preference=True), cache_root=tmp_path / "cache")
    pairs = pair_view(built, [0, 2, 4, 6], max_seq_length=10_000).dataset
    unpaired = pair_view(built, [0, 2, 4, 6], max_seq_length=10_000, unpaired_seed=3)
    assert unpaired.rows == 8 and unpaired.dataset.column_names == ["prompt_ids", "completion_ids", "label"]
    seen = sorted((tuple(r["prompt_ids"]), tuple(r["completion_ids"]), r["label"]) for r in unpaired.dataset)
    expected = sorted([(tuple(p["prompt_ids"]), tuple(p["chosen_ids"]), True) for p in pairs]
                      + [(tuple(p["prompt_ids"]), tuple(p["rejected_ids"]), False) for p in pairs])
    assert seen == expected
    again = pair_view(built, [0, 2, 4, 6], max_seq_length=10_000, unpaired_seed=3).dataset
    other = pair_view(built, [0, 2, 4, 6], max_seq_length=10_000, unpaired_seed=4).dataset
    assert again["label"] == unpaired.dataset["label"] and list(again) == list(unpaired.dataset)
    assert list(other) != list(unpaired.dataset)  # another seed, another order


def test_kto_answers_for_the_kl_term_rotate_within_the_batch():
    from lorawiz.data.pairs import with_kl_answers

    batch = [{"prompt_ids": [i], "completion_ids": [10 + i], "label": True} for i in range(3)]
    collated = with_kl_answers(lambda examples: examples)(batch)
    assert [row["KL_completion_ids"] for row in collated] == [[12], [10], [11]]  # TRL's (x_1, y_n), (x_2, y_1), ...
    assert [row["completion_ids"] for row in collated] == [[10], [11], [12]]
