"""The model card (lorawiz/publish/card.py): Hub-valid metadata from a run folder, PEFT's card data kept, a local
base never recorded as base_model."""

from __future__ import annotations

import json

import pytest
import yaml

from lorawiz.errors import LorawizError
from lorawiz.publish.card import build_card, check_card, hub_id


@pytest.mark.parametrize(("name", "expected"), [
    ("Qwen/Qwen3-4B", "Qwen/Qwen3-4B"), ("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B"),
    ("builtin:tiny", None), ("/models/llama", None), ("./base", None), ("gpt2", None), ("a/b/c", None),
    ("bad id/x", None), (None, None)])
def test_hub_id(name, expected):
    assert hub_id(name) == expected


def test_a_local_base_is_dropped_from_the_metadata_and_named_in_the_text(tmp_path):
    base = tmp_path / "base-model"
    base.mkdir()
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    # PEFT's save_pretrained card: the local path as base_model, and its own tags
    (tmp_path / "README.md").write_text(f"---\nbase_model: {base}\nlibrary_name: peft\ntags:\n- base_model:adapter:x\n"
                                        "---\n# Model Card for Model ID\n")
    (tmp_path / "lorawiz.yaml").write_text(yaml.safe_dump({
        "model": {"model_name_or_path": str(base)}, "lora": {"lora_r": 8, "lora_alpha": 16},
        "data": {"train_file": "HuggingFaceH4/ultrachat_200k", "max_seq_length": 512}, "training": {"method": "sft"}}))
    card = build_card(tmp_path, repo_id="you/adapter")
    assert card.data.base_model is None and card.data.library_name == "peft"
    assert card.data.datasets == ["HuggingFaceH4/ultrachat_200k"]
    assert "base_model:adapter:x" in card.data.tags and {"lorawiz", "lora", "sft"} <= set(card.data.tags)
    assert f"loaded from `{base}`, which is not a Hub id" in card.text
    assert 'PeftModel.from_pretrained(base, "you/adapter")' in card.text and "Model Card for Model ID" not in card.text
    check_card(card)
    named = build_card(tmp_path, repo_id="you/adapter", base_model="Qwen/Qwen3-4B")
    assert named.data.base_model == "Qwen/Qwen3-4B" and 'from_pretrained("Qwen/Qwen3-4B")' in named.text


def test_a_merged_model_loads_with_transformers_alone(tmp_path):
    (tmp_path / ".lorawiz-merge").write_text(json.dumps({"base": "Qwen/Qwen3-4B", "files": []}))
    (tmp_path / "config.json").write_text("{}")
    card = build_card(tmp_path, repo_id="you/merged")
    assert card.data.library_name == "transformers" and card.data.base_model == "Qwen/Qwen3-4B"
    assert "merged" in card.data.tags and "PeftModel" not in card.text
    assert 'AutoModelForCausalLM.from_pretrained("you/merged")' in card.text


def test_eval_results_become_the_model_index(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "Qwen/Qwen3-4B"}))
    (tmp_path / "all_results.json").write_text(json.dumps({"eval_loss": 1.23456, "global_step": 10}))
    (tmp_path / "eval-val-1.json").write_text(json.dumps({"data": "val.jsonl", "results": {
        "base": {"classification": {"as given": {"macro_f1": 0.4}}},
        "fine_tuned": {"classification": {"as given": {"macro_f1": 0.8}}}}}))
    card = build_card(tmp_path, repo_id="you/a")
    metrics = {(r.dataset_name, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert metrics == {("held-out split", "loss"): 1.2346, ("val.jsonl", "f1"): 0.8}
    assert "| macro F1 | 0.4000 | 0.8000 |" in card.text


def test_a_card_naming_a_path_is_refused_offline(tmp_path):
    from huggingface_hub import ModelCard

    with pytest.raises(LorawizError, match="base_model '/models/x' is not a Hub repository id"):
        check_card(ModelCard("---\nbase_model: /models/x\n---\ntext"))
