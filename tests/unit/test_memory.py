"""The training-memory estimator (lorawiz/memory.py): published figures, and terms that move the right way."""

from __future__ import annotations

import json

import pytest

from lorawiz.catalog import find_model
from lorawiz.lora_size import lora_parameters
from lorawiz.memory import TrainingShape, estimate_memory, loss_for
from tests.conftest import REPO

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


@pytest.mark.parametrize("name", ["mixtral-8x7b", "qwen3-30b-a3b", "gpt-oss-20b", "llama3.2-1b", "phi3-mini"])
def test_lora_parameter_count_matches_peft_on_the_meta_device(name):
    """peft itself, on the model built on the meta device: for a mixture of experts "all-linear" also wraps the
    fused experts and the router in Mixtral and Qwen3-MoE (peft maps their transformers 4 Linears), not in gpt-oss."""
    from accelerate import init_empty_weights
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    from tests.unit.test_catalog import config_json_of

    facts = find_model(name)
    values = config_json_of(facts)
    values.pop("quantization_config", None)
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(values.pop("model_type"), **values))
    wrapped = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    assert sum(p.numel() for p in wrapped.parameters() if p.requires_grad) == lora_parameters(facts, 16)


MEASURED = json.loads((REPO / "bench" / "results" / "memory_truth.json").read_text())["cells"]


def shape_of(cell: dict) -> TrainingShape:
    """A bench/memory_truth.py cell as the estimator sees it: on CPU, so no CUDA context or allocator slack."""
    targets = cell["targets"] if cell["targets"] == "all-linear" else tuple(cell["targets"].split(","))
    from lorawiz.methods import forward_passes_without_gradients, sequences_per_row

    method = cell.get("method", "sft")
    return TrainingShape(precision="bf16", quantization=cell["quantization"], lora_r=cell["rank"],
                         target_modules=targets, optimizer="adamw_torch", micro_batch=cell["micro_batch"],
                         seq_len=cell["seq"], gradient_checkpointing=cell["checkpointing"],
                         lora_dropout=cell["dropout"], on_gpu=False, sequences=sequences_per_row(method),
                         loss=loss_for({"method": method}) if method != "sft" else
                         "nll" if cell["loss"] == "nll" else "chunked_nll",
                         passes_without_gradients=forward_passes_without_gradients(method))


@pytest.mark.parametrize("result", MEASURED, ids=[result["name"] for result in MEASURED])
def test_the_estimate_is_within_5_percent_of_the_measured_peak(result):
    """Every cell bench/memory_truth.py measured tensor by tensor (its held-out cells fitted nothing)."""
    cell = result["cell"]
    estimate = estimate_memory(find_model(cell["model"]), shape_of(cell)).total
    assert estimate == pytest.approx(result["measured_bytes"], rel=0.05)


def test_a_sequence_head_holds_no_vocabulary_sized_logits():
    from lorawiz.memory import loss_bytes

    lm, head = TrainingShape(micro_batch=4, seq_len=2048), TrainingShape(micro_batch=4, seq_len=2048, loss="head")
    (lm_bytes, lm_formula), (head_bytes, head_formula) = loss_bytes(LLAMA_8B, lm), loss_bytes(LLAMA_8B, head)
    assert "vocab" in lm_formula and "no vocabulary-sized logits" in head_formula
    assert lm_bytes == 4 * 256 * 128_256 * 4 and head_bytes == 0  # TRL's four fp32 chunks, or none
    # where the loss moment is the peak (no checkpointing, short rows), the head's peak is lower by that much
    short = dict(micro_batch=1, seq_len=256, gradient_checkpointing=True)
    assert (estimate_memory(LLAMA_8B, TrainingShape(**short)).total
            > estimate_memory(LLAMA_8B, TrainingShape(**short, loss="head")).total)
    assert loss_for({"head": "sequence"}) == "head" and loss_for({"head": "lm"}) == loss_for({}) == "chunked_nll"
    # nor an lm_head: Llama-3.1-8B's untied [128256, 4096] matrix is not loaded (a tied one is the embeddings)
    lm_weights, head_weights = estimate_memory(LLAMA_8B, lm)["base weights"], estimate_memory(LLAMA_8B, head)[
        "base weights"]
    assert lm_weights - head_weights == 128_256 * 4096 * 2
    tied = find_model("meta-llama/Llama-3.2-1B")
    assert (estimate_memory(tied, TrainingShape(loss="head"))["base weights"]
            == estimate_memory(tied, TrainingShape())["base weights"])
