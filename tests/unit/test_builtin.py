"""Built-ins: the triage sample data, the tiny model and its cache, and `resolve_builtin`."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from pathlib import Path

import pytest

from lorawiz.builtin import BUILTIN_NAMES, resolve_builtin
from lorawiz.builtin.tiny import MARKER, TINY_CONFIG, build_once, tiny_model_dir
from lorawiz.builtin.triage import CATEGORIES, SYSTEM_PROMPT, triage_digest, triage_rows, write_triage
from lorawiz.data.formats import validate_messages
from lorawiz.errors import LorawizError

# sha256 of json.dumps(train + validation rows, sort_keys=True), the same on Python 3.10-3.13 with any hash seed.
# Update it (and re-check DEMO_SETTINGS with the demo) only when the dataset is changed on purpose.
TRIAGE_SHA256 = "14fa5ddff62b4d6e6729a1e7f9174de2b64857a1107d4755d4f647dd485d0e97"


def _report(row: dict) -> str:
    return row["messages"][1]["content"]


def _label(row: dict) -> str:
    return row["messages"][-1]["content"]


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lorawiz-cache")


@pytest.fixture(scope="module")
def tiny_dir(cache_root) -> Path:
    return tiny_model_dir(cache_root)


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_dir), AutoTokenizer.from_pretrained(tiny_dir)


# --- the triage dataset ---------------------------------------------------------------------------------------------

def test_triage_is_deterministic_and_ignores_the_global_random_state():
    random.seed(1)
    first = triage_rows("train") + triage_rows("validation")
    random.seed(2)
    second = triage_rows("train") + triage_rows("validation")
    assert first == second
    assert hashlib.sha256(json.dumps(first, sort_keys=True).encode()).hexdigest() == TRIAGE_SHA256
    assert triage_digest() == triage_digest()


def test_triage_splits_share_no_report():
    train = [_normal(_report(row)) for row in triage_rows("train")]
    validation = [_normal(_report(row)) for row in triage_rows("validation")]
    assert len(set(train)) == len(train) == 900
    assert len(set(validation)) == len(validation) == 240
    assert not set(train) & set(validation)


@pytest.mark.parametrize("split", ["train", "validation"])
def test_every_category_in_every_split_in_equal_shares(split):
    counts = Counter(_label(row) for row in triage_rows(split))
    assert set(counts) == set(CATEGORIES)
    assert max(counts.values()) == min(counts.values())
    # interleaved, not sorted by label: any 60 consecutive rows hold every category
    assert {_label(row) for row in triage_rows(split)[:60]} == set(CATEGORIES)


def test_triage_rows_are_valid_canonical_chat():
    for row in triage_rows("train") + triage_rows("validation"):
        assert list(row) == ["messages"]
        validate_messages(row["messages"])
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
        assert row["messages"][0]["content"] == SYSTEM_PROMPT
        assert _label(row) in CATEGORIES
    assert all(category in SYSTEM_PROMPT for category in CATEGORIES)


def test_reports_name_other_categories_so_one_keyword_is_not_enough():
    misleading = Counter()
    for row in triage_rows("train"):
        text = _report(row).lower()
        misleading.update(c for c in CATEGORIES if c != _label(row) and c in text)
    assert len(misleading) >= 3, misleading
    assert sum(misleading.values()) >= 50, misleading


def test_unknown_split_is_refused():
    with pytest.raises(ValueError, match="train, validation"):
        triage_rows("test")


def test_write_triage_writes_both_splits_and_keeps_existing_files(tmp_path):
    train, validation = write_triage(tmp_path)
    assert (train.name, validation.name) == ("triage-train.jsonl", "triage-validation.jsonl")
    for path, split in ((train, "train"), (validation, "validation")):
        assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == triage_rows(split)
    with pytest.raises(LorawizError, match="already exists"):
        write_triage(tmp_path)
    assert write_triage(tmp_path, overwrite=True) == (train, validation)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["triage-pairs-train.jsonl", "triage-pairs-validation.jsonl",
                                                          "triage-train.jsonl", "triage-validation.jsonl"]


def test_the_pairs_prefer_each_reports_category_over_another():
    from lorawiz.builtin.triage import triage_pairs
    from lorawiz.data.preference import convert_preference

    for split in ("train", "validation"):
        pairs, rows = triage_pairs(split), triage_rows(split)
        assert len(pairs) == len(rows)
        for pair, row in zip(pairs, rows, strict=True):
            assert pair["prompt"] == row["messages"][:-1] and pair["chosen"] == row["messages"][-1:]
            assert pair["rejected"][0]["content"] in CATEGORIES
            assert pair["rejected"][0]["content"] != pair["chosen"][0]["content"]
            assert convert_preference(pair) == pair  # already the canonical form


# --- the tiny model -------------------------------------------------------------------------------------------------

def test_tiny_model_is_built_once_and_reused(cache_root, tiny_dir):
    marker = tiny_dir / MARKER
    stamp = (marker.stat().st_mtime_ns, (tiny_dir / "model.safetensors").stat().st_mtime_ns)
    assert tiny_model_dir(cache_root) == tiny_dir
    assert (marker.stat().st_mtime_ns, (tiny_dir / "model.safetensors").stat().st_mtime_ns) == stamp
    assert tiny_dir.name.startswith("tiny-llama-v")
    assert [p.name for p in cache_root.iterdir() if p.name.startswith(".")] == []  # no temp folder left


def test_tiny_model_loads_with_auto_classes_and_has_a_chat_template(tiny):
    model, tokenizer = tiny
    assert model.config.model_type == "llama"
    assert model.config.num_hidden_layers == TINY_CONFIG["num_hidden_layers"]
    assert model.config.hidden_size == TINY_CONFIG["hidden_size"]
    assert len(tokenizer) <= model.config.vocab_size
    assert tokenizer.chat_template
    row = triage_rows("validation")[0]
    text = tokenizer.apply_chat_template(row["messages"][:-1], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    assert tokenizer.eos_token_id == model.config.eos_token_id
    for category in CATEGORIES:  # one token per label: scoring and the demo's answers stay simple
        assert len(tokenizer(category, add_special_tokens=False)["input_ids"]) == 1


def test_two_builds_in_different_roots_are_identical(tiny_dir, tmp_path):
    from safetensors.torch import load_file

    other = tiny_model_dir(tmp_path)
    assert other.name == tiny_dir.name
    assert (other / "tokenizer.json").read_bytes() == (tiny_dir / "tokenizer.json").read_bytes()
    first, second = load_file(tiny_dir / "model.safetensors"), load_file(other / "model.safetensors")
    assert first.keys() == second.keys()
    assert all(first[name].equal(second[name]) for name in first)


def test_an_interrupted_build_leaves_nothing_behind(tmp_path):
    target = tmp_path / "thing"

    def crash(folder: Path) -> None:
        (folder / "half.bin").write_bytes(b"x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_once(target, crash)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_without_the_marker_is_rebuilt(tmp_path):
    target = tmp_path / "thing"
    target.mkdir()
    (target / "half.bin").write_bytes(b"x")
    build_once(target, lambda folder: (folder / MARKER).write_text("{}"))
    assert sorted(p.name for p in target.iterdir()) == [MARKER]
    assert [p.name for p in tmp_path.iterdir()] == ["thing"]


def test_losing_a_build_race_keeps_the_winner(tmp_path):
    target = tmp_path / "thing"

    def build_while_another_finishes(folder: Path) -> None:
        (folder / MARKER).write_text("loser")
        target.mkdir()
        (target / MARKER).write_text("winner")

    assert build_once(target, build_while_another_finishes) == target
    assert (target / MARKER).read_text() == "winner"
    assert [p.name for p in tmp_path.iterdir()] == ["thing"]


# --- resolve_builtin ------------------------------------------------------------------------------------------------

def test_resolve_builtin_names(cache_root, tiny_dir):
    assert resolve_builtin("builtin:tiny", cache_root) == str(tiny_dir)
    train = Path(resolve_builtin("builtin:triage", cache_root))
    validation = Path(resolve_builtin("builtin:triage:validation", cache_root))
    assert train.parent == validation.parent and train.parent.parent == cache_root
    assert len(train.read_text(encoding="utf-8").splitlines()) == 900
    assert json.loads(validation.read_text(encoding="utf-8").splitlines()[0]) == triage_rows("validation")[0]
    stamp = train.stat().st_mtime_ns
    assert resolve_builtin("builtin:triage", cache_root) == str(train)
    assert train.stat().st_mtime_ns == stamp


def test_resolve_builtin_uses_lorawiz_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("LORAWIZ_CACHE", str(tmp_path))
    assert Path(resolve_builtin("builtin:triage:validation")).parent.parent == tmp_path


@pytest.mark.parametrize(("name", "suggested"), [("builtin:tiny-llama", "builtin:tiny"), ("tiny", "builtin:tiny"),
                                               ("builtin:traige", "builtin:triage"), ("builtin:nope", None)])
def test_unknown_builtin_lists_the_known_names(name, suggested, tmp_path):
    with pytest.raises(LorawizError) as caught:
        resolve_builtin(name, tmp_path)
    assert f'"{name}"' in caught.value.message
    assert all(known in caught.value.hint for known in BUILTIN_NAMES)
    assert caught.value.hint.startswith(f'Did you mean "{suggested}"?' if suggested else "Known built-ins:")
    assert list(tmp_path.iterdir()) == []


def test_importing_lorawiz_builtin_stays_cheap():
    import subprocess
    import sys

    code = "import sys, lorawiz.builtin; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
