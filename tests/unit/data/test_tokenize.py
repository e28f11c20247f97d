"""The tokenised cache (lorawiz/data/tokenize.py) and its views (lorawiz/data/view.py): built once, read back
when nothing it depends on changed, built again when anything did, and the same examples as the in-memory path
(lorawiz.data.masking.tokenize_rows)."""

from __future__ import annotations

import json
import os

import pytest

from lorawiz.data.cache import KEEP_PER_FILE
from lorawiz.data.formats import ConvertOptions
from lorawiz.data.masking import tokenize_rows
from lorawiz.data.rows import holdout_split, read_rows
from lorawiz.data.tokenize import tokenise_file
from lorawiz.data.view import holdout, training_view
from lorawiz.errors import LorawizError
from tests.unit.data.conftest import chat, write_jsonl


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from lorawiz.builtin import resolve_builtin
    from lorawiz.data.masking import ensure_chat_template

    loaded = AutoTokenizer.from_pretrained(resolve_builtin("builtin:tiny"))
    ensure_chat_template(loaded)
    return loaded


def _rows(count: int) -> list[dict]:
    """Chat rows of varied length, with exact and case/space duplicates."""
    rows = []
    for i in range(count):
        words = " ".join(["smoke", "from", "the", "house", "near", "the", "river"] * (1 + i % 9))
        rows.append(chat(f"report {i % 40}: {words}", "fire" if i % 3 else "flood " * (1 + i % 5)))
    rows[5] = dict(rows[4])  # identical
    rows[7] = chat(rows[6]["messages"][0]["content"].upper() + "  ", rows[6]["messages"][1]["content"])  # near
    return rows


@pytest.fixture
def data(tmp_path):
    return write_jsonl(tmp_path / "train.jsonl", _rows(120))


def _build(path, tokenizer, root, **kwargs):
    return tokenise_file(path, tokenizer, cache_root=root, **kwargs)


def test_second_read_is_a_cache_hit_with_the_same_tokens(data, tokenizer, tmp_path):
    root = tmp_path / "cache"
    first = _build(data, tokenizer, root)
    second = _build(data, tokenizer, root)
    assert (first.hit, second.hit) == (False, True)
    assert second.entry == first.entry
    assert second.dataset.to_dict() == first.dataset.to_dict()
    assert first.size_bytes > 0 and not list(first.entry.parent.glob(".building-*"))


def _changed_tokenizer(tokenizer):
    import copy

    other = copy.deepcopy(tokenizer)
    other.chat_template = tokenizer.chat_template.replace("<|im_start|>", "<|im_start|> ")
    return other


@pytest.mark.parametrize("change", ["content", "options", "tokenizer", "assistant_only"])
def test_changing_any_fingerprint_part_tokenises_again(data, tokenizer, tmp_path, change):
    root = tmp_path / "cache"
    before = _build(data, tokenizer, root)
    tokens_before = before.dataset.to_dict()
    kwargs: dict = {}
    used = tokenizer
    if change == "content":
        with data.open("a") as handle:
            handle.write(json.dumps(chat("a new report", "medical")) + "\n")
    elif change == "options":
        kwargs["opts"] = ConvertOptions(system="You triage incidents.")
    elif change == "tokenizer":
        used = _changed_tokenizer(tokenizer)
    else:
        kwargs["assistant_only"] = False
    after = _build(data, used, root, **kwargs)
    assert not after.hit and after.entry != before.entry
    tokens_after = after.dataset.to_dict()
    assert (tokens_after["input_ids"], tokens_after["labels"]) != (tokens_before["input_ids"], tokens_before["labels"])
    # the same file with other content replaces its entry; other settings sit beside it
    assert before.entry.exists() == (change != "content")


def test_a_file_touched_but_unchanged_gets_a_new_entry_and_the_old_one_goes(data, tokenizer, tmp_path):
    root = tmp_path / "cache"
    before = _build(data, tokenizer, root)
    stat = data.stat()
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after = _build(data, tokenizer, root)
    assert not after.hit and not before.entry.exists()


def test_at_most_keep_per_file_entries_stay(data, tokenizer, tmp_path):
    root = tmp_path / "cache"
    entries = [_build(data, tokenizer, root, opts=ConvertOptions(system=f"prompt {i}")).entry
               for i in range(KEEP_PER_FILE + 2)]
    kept = sorted(path for path in entries[0].parent.iterdir() if path.is_dir())
    assert len(kept) == KEEP_PER_FILE and entries[-1] in kept and entries[0] not in kept


def test_other_folders_in_the_cache_are_never_removed(data, tokenizer, tmp_path):
    root = tmp_path / "cache"
    first = _build(data, tokenizer, root)
    stranger = first.entry.parent / "mine"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("keep me")
    with data.open("a") as handle:
        handle.write(json.dumps(chat("one more", "fire")) + "\n")
    _build(data, tokenizer, root)
    assert (stranger / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(("ratio", "seed", "max_len"), [(0.0, 42, 4096), (0.2, 3, 64), (0.25, 0, 32), (0.1, 7, 200)])
def test_cached_views_hold_exactly_the_in_memory_examples(data, tokenizer, tmp_path, ratio, seed, max_len):
    tokenised = _build(data, tokenizer, tmp_path / "cache")
    rows = read_rows(data)
    if ratio:
        train_rows, val_rows = holdout_split(rows, ratio, seed)
        train_idx, val_idx = holdout(tokenised, ratio, seed)
        sides = [(train_rows, train_idx), (val_rows, val_idx)]
    else:
        sides = [(rows, None)]
    for side_rows, indices in sides:
        expected = tokenize_rows(tokenizer, side_rows, max_len)
        view = training_view(tokenised, indices, max_len)
        got = [{"input_ids": row["input_ids"], "labels": row["labels"]} for row in view.dataset]
        assert got == expected.examples
        assert [row["length"] for row in view.dataset] == [len(row["input_ids"]) for row in got] == \
            view.lengths.tolist()
        assert (view.rows, view.truncated, view.dropped, view.trained_tokens, view.total_tokens) == (
            len(expected.examples), expected.truncated, expected.dropped, expected.trained_tokens,
            expected.total_tokens)


def test_max_seq_length_and_split_seed_change_the_view_not_the_tokens(data, tokenizer, tmp_path):
    root = tmp_path / "cache"
    tokenised = _build(data, tokenizer, root)
    short, long = training_view(tokenised, None, 48), training_view(tokenised, None, 4096)
    assert short.truncated > 0 and long.truncated == 0
    assert max(row["length"] for row in short.dataset) == 48
    again = training_view(_build(data, tokenizer, root), None, 48)  # the truncated rows are read from the cache
    assert again.dataset.to_dict() == short.dataset.to_dict()
    assert holdout(tokenised, 0.2, 1)[1].tolist() != holdout(tokenised, 0.2, 2)[1].tolist()


def test_near_duplicates_stay_on_one_side_of_the_split(data, tokenizer, tmp_path):
    tokenised = _build(data, tokenizer, tmp_path / "cache")
    for seed in range(6):
        train_idx, val_idx = holdout(tokenised, 0.3, seed)
        for pair in ((4, 5), (6, 7)):
            assert (pair[0] in val_idx) == (pair[1] in val_idx)
        assert sorted([*train_idx, *val_idx]) == list(range(tokenised.rows))


def test_bad_rows_fail_with_their_lines_and_leave_no_cache(tmp_path, tokenizer):
    path = tmp_path / "bad.jsonl"
    good = json.dumps(chat("q", "a"))
    path.write_text("\n".join([good, "{not json", good, '{"messages": []}', good]) + "\n")
    with pytest.raises(LorawizError) as caught:
        _build(path, tokenizer, tmp_path / "cache")
    text = str(caught.value) + "".join(str(p) for p in getattr(caught.value, "problems", []))
    assert "line 2" in text and "line 4" in text
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_two_processes_tokenise_in_parallel_to_the_same_result(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "many.jsonl", _rows(400))
    one = _build(path, tokenizer, tmp_path / "a", processes=1)
    import lorawiz.data.tokenize as module

    old, module.ROWS_PER_PROCESS = module.ROWS_PER_PROCESS, 100
    try:
        two = _build(path, tokenizer, tmp_path / "b", processes=2)
    finally:
        module.ROWS_PER_PROCESS = old
    assert (one.processes, two.processes) == (1, 2) and len(two.files) == 2
    assert two.dataset.to_dict() == one.dataset.to_dict()
    cut_one, cut_two = training_view(one, None, 40), training_view(two, None, 40)  # rows from both shards cut
    assert cut_one.truncated > 100 and cut_two.dataset.to_dict() == cut_one.dataset.to_dict()


def test_batch_columns_match_each_rows_own_tokens(tokenizer):
    """encode_batch builds its columns for the whole batch at once: each row's slice, length, trained count, first
    trained position and group key are those of the row encoded on its own, also for a row with nothing to train."""
    from lorawiz.data.dedupe import stable_key
    from lorawiz.data.masking import IGNORE_INDEX, encode_rows
    from lorawiz.data.tokenize import encode_batch

    untrained = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0}]}
    rows = [chat("short", "yes"), {"text": "plain text row"}, untrained, *_rows(12)]
    table = encode_batch({"row": [json.dumps(row) for row in rows]}, tokenizer, True)
    columns = table.to_pydict()
    for k, row in enumerate(rows):
        [(ids, labels)] = encode_rows(tokenizer, [row])
        trained = [i for i, label in enumerate(labels.tolist()) if label != IGNORE_INDEX]
        assert columns["input_ids"][k] == ids.tolist() and columns["labels"][k] == labels.tolist()
        assert columns["length"][k] == len(ids) and columns["trained"][k] == len(trained)
        assert columns["first_trained"][k] == (trained[0] if trained else len(ids))
        assert columns["group"][k] == stable_key(row)
    assert columns["trained"][2] == 0 and columns["first_trained"][2] == columns["length"][2]
    assert encode_batch({"row": []}, tokenizer, True).num_rows == 0


def test_the_split_is_cached_in_the_entry_and_read_back_the_same(data, tokenizer, tmp_path):
    import numpy as np

    tokenised = _build(data, tokenizer, tmp_path / "cache")
    first = holdout(tokenised, 0.2, 5)
    [saved] = tokenised.entry.glob("split-*.npy")
    assert np.load(saved).tolist() == first[1].tolist()
    saved.write_bytes(saved.read_bytes()[:20])  # damaged: computed again (and saved again), same split
    for again in (holdout(tokenised, 0.2, 5), holdout(_build(data, tokenizer, tmp_path / "cache"), 0.2, 5)):
        assert [side.tolist() for side in again] == [side.tolist() for side in first]
    assert np.load(saved).tolist() == first[1].tolist()


def test_cached_views_and_splits_stay_bounded_and_never_touch_the_tokens(data, tokenizer, tmp_path):
    from lorawiz.data.view import KEEP_VIEWS

    root = tmp_path / "cache"
    tokenised = _build(data, tokenizer, root)
    for k in range(KEEP_VIEWS + 3):
        holdout(tokenised, 0.2, k)
        training_view(tokenised, None, 30 + k)
    entry = tokenised.entry
    assert len(list(entry.glob("split-*.npy"))) == KEEP_VIEWS
    assert len(list(entry.glob("view-train-*.arrow"))) == KEEP_VIEWS
    assert not list(entry.glob(".*"))  # no temp file left
    again = _build(data, tokenizer, root)
    assert again.hit and again.dataset.to_dict() == tokenised.dataset.to_dict()
