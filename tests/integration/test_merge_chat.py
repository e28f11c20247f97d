"""`lorawiz merge` and `lorawiz chat` on the built-in tiny model with a real (non-zero) LoRA adapter."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from lorawiz.errors import LorawizError
from tests.conftest import subprocess_env

TEXT = "A bus has overturned near the river crossing and several passengers are hurt."


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    """A LoRA adapter whose B matrices are random (init_lora_weights=False), so it really changes the model."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lorawiz.builtin import resolve_builtin

    base = resolve_builtin("builtin:tiny")
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False,
                                      task_type="CAUSAL_LM"))
    folder = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return folder, base


def logits(model, tokenizer):
    with torch.no_grad():
        return model(**tokenizer(TEXT, return_tensors="pt")).logits


def test_merged_model_loads_alone_and_matches_base_plus_adapter(tmp_path, adapter):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lorawiz.merge import merge_adapter

    folder, base = adapter
    report = merge_adapter(folder, tmp_path / "merged", dtype="fp32")
    assert report.max_abs_diff <= report.tolerance
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "merged")
    assert tokenizer.chat_template  # the chat template travels with the model
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), folder).eval()
    plain_base = AutoModelForCausalLM.from_pretrained(base).eval()
    got, expected = logits(merged, tokenizer), logits(reference, tokenizer)
    assert torch.allclose(got, expected, atol=1e-4)
    assert not torch.allclose(logits(plain_base, tokenizer), expected, atol=1e-2)  # the adapter does matter


def test_merge_refuses_to_overwrite_and_non_adapters(tmp_path, adapter):
    from lorawiz.merge import merge_adapter
    from lorawiz.ownership import MERGE_MARKER

    folder, base = adapter
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(LorawizError, match="already exists"):
        merge_adapter(folder, tmp_path / "out")
    with pytest.raises(LorawizError, match="not a lorawiz merge output"):  # --overwrite replaces only a merge output
        merge_adapter(folder, tmp_path / "out", overwrite=True, dtype="fp32")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["keep.txt"]
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
    with pytest.raises(LorawizError, match="not an adapter folder"):
        merge_adapter(base, tmp_path / "other")
    merge_adapter(folder, tmp_path / "merged", dtype="fp32")
    marker = json.loads((tmp_path / "merged" / MERGE_MARKER).read_text())
    assert "config.json" in marker["files"] and marker["adapter"] == str(folder)
    merge_adapter(folder, tmp_path / "merged", overwrite=True, dtype="fp32")
    assert (tmp_path / "merged" / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged", "out"]  # no temporary folder or lock left behind


def test_chat_prompt_answers_once(adapter):
    folder, _ = adapter
    done = subprocess.run([sys.executable, "-m", "lorawiz", "chat", str(folder), "--prompt", TEXT,
                           "--temperature", "0", "--max-new-tokens", "4"], capture_output=True, text=True,
                          env=subprocess_env(CI="true"), timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()  # some generated text, then a newline
    assert "Traceback" not in done.stderr


def test_chat_loop_reset_and_exit(adapter):
    from lorawiz.chat import open_session, repl

    folder, _ = adapter
    session = open_session(str(folder), max_new_tokens=3, temperature=0)
    said: list[str] = []
    answers = iter(["hello", "/reset", "again", "/exit"])
    repl(session, read=lambda _: next(answers), write=said.append)
    text = "".join(said)
    assert text.count("model> ") == 2 and "(conversation cleared)" in text
    assert len(session.history) == 2  # only the turn after /reset is remembered


def test_merge_cli_reports_the_check(tmp_path, adapter):
    folder, _ = adapter
    done = subprocess.run([sys.executable, "-m", "lorawiz", "merge", str(folder), "-o", str(tmp_path / "m"),
                           "--dtype", "fp32"], capture_output=True, text=True, env=subprocess_env(CI="true"),
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "largest logit difference" in done.stdout and json.loads((tmp_path / "m" / "config.json").read_text())
    assert f"serve it with vLLM: vllm serve {(tmp_path / 'm').resolve()} --served-model-name m" in done.stdout
