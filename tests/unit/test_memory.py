"""The training-memory estimator (lorawiz/memory.py): published figures, and terms that move the right way."""

from __future__ import annotations

import pytest

from lorawiz.catalog import find_model
from lorawiz.memory import TrainingShape, estimate_memory, lora_parameters

GB = 10**9  # the published ranges are in GB
LLAMA_8B = find_model("meta-llama/Llama-3.1-8B")


@pytest.mark.parametrize("micro_batch", [1, 2])
def test_8b_qlora_short_sequences_needs_6_to_10_gb(micro_batch):
    # The commonly published range for QLoRA on an 8B model at micro-batch 1-2 and short sequences (issue 4).
    shape = TrainingShape(quantization="nf4-dq", micro_batch=micro_batch, seq_len=512, optimizer="paged_adamw_8bit")
    assert 6 * GB <= estimate_memory(LLAMA_8B, shape).total <= 10 * GB


@pytest.mark.parametrize("micro_batch", [1, 2])
def test_8b_16bit_lora_short_sequences_needs_18_to_24_gb(micro_batch):
    shape = TrainingShape(quantization="none", micro_batch=micro_batch, seq_len=512, optimizer="paged_adamw_8bit")
    assert 18 * GB <= estimate_memory(LLAMA_8B, shape).total <= 24 * GB


def test_lora_parameter_count_matches_peft():
    # PEFT reports 41,943,040 trainable parameters for Llama-3.1-8B, r=16, all linear layers.
    assert lora_parameters(LLAMA_8B, 16) == 41_943_040
    assert lora_parameters(LLAMA_8B, 16, "q_proj,v_proj") == 32 * 16 * ((4096 + 4096) + (4096 + 1024))


def test_terms_move_the_right_way():
    base = TrainingShape()
    peak = estimate_memory(LLAMA_8B, base)
    assert estimate_memory(LLAMA_8B, TrainingShape(gradient_checkpointing=False))["activations"] > 4 * peak[
        "activations"]
    assert estimate_memory(LLAMA_8B, TrainingShape(micro_batch=4)).total > peak.total
    assert estimate_memory(LLAMA_8B, TrainingShape(quantization="nf4")).total < peak.total
    assert (estimate_memory(LLAMA_8B, TrainingShape(quantization="nf4-dq"))["base weights"]
            < estimate_memory(LLAMA_8B, TrainingShape(quantization="nf4"))["base weights"])
    assert estimate_memory(LLAMA_8B, TrainingShape(optimizer="paged_adamw_8bit"))["optimizer states"] < peak[
        "optimizer states"] / 3
    assert peak.torch_reserved == pytest.approx(peak.total - 512 * 2**20)
    cpu = estimate_memory(LLAMA_8B, TrainingShape(precision="fp32", on_gpu=False))
    assert cpu["base weights"] == LLAMA_8B.parameters()["total"] * 4
    assert not any(t.name == "cuda context" for t in cpu.terms)


def test_every_term_says_how_it_was_computed():
    for term in estimate_memory(LLAMA_8B, TrainingShape(quantization="nf4-dq")).terms:
        assert term.bytes > 0 and term.formula
