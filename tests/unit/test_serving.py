"""The vLLM line lorawiz prints after training and merging (lorawiz/serving.py): the adapter served on its base with
a --max-lora-rank that holds its rank, and a merge first when vLLM cannot serve it as it is."""

from __future__ import annotations

import json
import shlex

import pytest

from lorawiz.serving import describe, vllm_hint


def adapter(tmp_path, **config):
    folder = tmp_path / "my-run"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "Qwen/Qwen3-4B", "r": 16,
                                                            "bias": "none", "task_type": "CAUSAL_LM", **config}))
    return folder


@pytest.mark.parametrize(("rank", "pattern", "max_rank"), [(8, {}, "8"), (16, {}, "16"), (24, {}, "32"),
                                                           (64, {}, "64"), (16, {"q_proj": 128}, "128"),
                                                           (300, {}, "320")])
def test_the_line_serves_the_adapter_on_its_base_with_a_rank_limit_that_holds_it(tmp_path, rank, pattern, max_rank):
    folder = adapter(tmp_path, r=rank, rank_pattern=pattern)
    hint = vllm_hint(folder)
    argv = shlex.split(hint.command)
    assert argv[:3] == ["vllm", "serve", "Qwen/Qwen3-4B"] and "--enable-lora" in argv
    assert argv[argv.index("--lora-modules") + 1] == f"my-run={folder.resolve()}"
    assert argv[argv.index("--max-lora-rank") + 1] == max_rank
    assert hint.problems == [] and describe(hint) == [f"serve it with vLLM: {hint.command}"]


@pytest.mark.parametrize(("config", "why"), [
    ({"use_dora": True}, "DoRA"), ({"modules_to_save": ["lm_head"]}, "modules_to_save: lm_head"),
    ({"bias": "lora_only"}, "bias: lora_only"), ({"task_type": "SEQ_CLS"}, "sequence-classification"),
    ({"r": 1024}, "above vLLM's largest --max-lora-rank"),
])
def test_what_vllm_cannot_serve_says_why_and_to_merge_first(tmp_path, config, why):
    folder = adapter(tmp_path, **config)
    lines = describe(vllm_hint(folder))
    assert lines[0].startswith("warning: vLLM cannot serve this adapter as it is") and why in lines[0]
    assert lines[1] == f"merge it first: lorawiz merge {folder.resolve()} -o {tmp_path.resolve() / 'my-run-merged'}"
    assert lines[2].startswith(f"then serve the merged model: vllm serve {tmp_path.resolve() / 'my-run-merged'}")


def test_a_merged_model_is_served_directly_and_other_folders_get_no_line(tmp_path):
    merged = tmp_path / "merged"
    merged.mkdir()
    (merged / "config.json").write_text("{}")
    assert describe(vllm_hint(merged)) == [f"serve it with vLLM: vllm serve {merged.resolve()} --served-model-name "
                                           "merged"]
    assert vllm_hint(tmp_path / "nothing") is None and describe(None) == []
