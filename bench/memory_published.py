"""lorawiz.memory against published GPU measurements of Hugging Face + PEFT training (issue 16, point 5).

A cross-check, not a fit: no constant of lorawiz.memory comes from these figures. Each is compared with the
estimate of its own definition: the PEFT benchmark reports torch.cuda.max_memory_reserved (the estimate without
the CUDA context); LLaMA-Factory's figures are "GRAM" of an unstated definition (taken as nvidia-smi, the
estimate with the context). Their loss is transformers' own (the whole logits, lorawiz's "nll"), not TRL's chunks.

    python bench/memory_published.py        # prints the table bench/README.md shows
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lorawiz.catalog import ModelFacts, find_model  # noqa: E402
from lorawiz.memory import GIB, TrainingShape, estimate_memory  # noqa: E402

# Llama-2-7B is not in the catalog (its config.json: 32 layers, 4096 wide, 11008 MLP, 32 heads without GQA).
LLAMA2_7B = ModelFacts(name="meta-llama/Llama-2-7b-hf", architecture="llama", layers=32, hidden=4096,
                       intermediate=11008, heads=32, kv_heads=32, head_dim=128, vocab=32000, tied_embeddings=False,
                       context_length=4096)


@dataclasses.dataclass(frozen=True)
class Published:
    source: str
    model: ModelFacts
    shape: TrainingShape
    measured_gib: float
    definition: str  # "reserved" (torch.cuda.max_memory_reserved) or "device" (the whole GPU, context included)


# PEFT's MetaMathQA benchmark (huggingface/peft method_comparison/MetaMathQA, commit 51c2ff66): Llama-3.2-3B in
# bf16 without autocast (fp32 adapters), batch 4, sequences truncated at 768 and padded to the longest of a
# length-sorted bucket, no gradient checkpointing, AdamW; accelerator_memory_max = max_memory_reserved, L40S.
PEFT_SHAPE = TrainingShape(precision="bf16", micro_batch=4, seq_len=768, gradient_checkpointing=False,
                           loss="nll", optimizer="adamw_torch")
FIGURES = [
    Published("PEFT MetaMathQA lora--llama-3.2-3B-rank32 (q,v)", find_model("llama3.2-3b"),
              dataclasses.replace(PEFT_SHAPE, lora_r=32, target_modules=("q_proj", "v_proj")), 20.76, "reserved"),
    Published("PEFT MetaMathQA lora--llama-3.2-3B-rank64 (q,v)", find_model("llama3.2-3b"),
              dataclasses.replace(PEFT_SHAPE, lora_r=64, target_modules=("q_proj", "v_proj")), 21.00, "reserved"),
    Published("PEFT MetaMathQA lora--llama-3.2-3B-rank10-target-mlp", find_model("llama3.2-3b"),
              dataclasses.replace(PEFT_SHAPE, lora_r=10, target_modules=("gate_proj", "up_proj", "down_proj")),
              23.00, "reserved"),
    # LLaMA-Factory's comparison (as copied in unslothai/unsloth's README, commit 0a2c3973): Llama-2-7B, one A100,
    # batch 4, max length 1024, LoRA rank 8, gradient checkpointing (LLaMA-Factory's default then), q,v targets
    # (its README's examples), 4-bit = nf4 with double quantization (its default).
    Published("LLaMA-Factory, Llama-2-7B LoRA 16-bit, HF", LLAMA2_7B,
              TrainingShape(precision="bf16", micro_batch=4, seq_len=1024, lora_r=8,
                            target_modules=("q_proj", "v_proj"), loss="nll"), 18.0, "device"),
    Published("LLaMA-Factory, Llama-2-7B QLoRA 4-bit, HF", LLAMA2_7B,
              TrainingShape(precision="bf16", quantization="nf4-dq", micro_batch=4, seq_len=1024, lora_r=8,
                            target_modules=("q_proj", "v_proj"), loss="nll"), 9.0, "device"),
]


def main() -> None:
    print(f"{'source':<58} {'published':>10} {'estimate':>9} {'error':>7}")
    errors = []
    for figure in FIGURES:
        estimate = estimate_memory(figure.model, figure.shape)
        value = (estimate.torch_reserved if figure.definition == "reserved" else estimate.total) / GIB
        measured = figure.measured_gib * (1e9 / GIB if figure.definition == "device" else 1)  # "GB" as 10^9
        errors.append(value / measured - 1)
        print(f"{figure.source:<58} {measured:8.2f} GiB {value:6.2f} GiB {errors[-1]:+7.1%}  ({figure.definition}, "
              f"peak at the {estimate.moment})")
    ordered = sorted(abs(error) for error in errors)
    print(f"median |error| {ordered[len(ordered) // 2]:.1%}, worst {ordered[-1]:.1%}")


if __name__ == "__main__":
    main()
