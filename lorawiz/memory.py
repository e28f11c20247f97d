"""Peak training memory per GPU for LoRA and QLoRA, as a breakdown of named terms. Pure: no torch.

Each term is a formula over the model's architecture (lorawiz.catalog.ModelFacts) and the training shape, with its
source in a comment. The figures are estimates of what one GPU holds at the worst moment of a training step,
which is at the start of the backward pass: weights, adapters with gradients and optimizer states, the saved
activations, and the logits with their fp32 copies. Under data parallelism every GPU holds all of this for its own
micro-batch (LoRA's gradient buckets are small), so the figure is per GPU.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

GIB = 2**30
MIB = 2**20
DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}

# PEFT keeps adapter weights in fp32 even when the base model is bf16 (LoraConfig/get_peft_model
# autocast_adapter_dtype=True, the default), so the adapters and their gradients take 4 bytes a parameter.
ADAPTER_BYTES = 4
ADAPTER_GRAD_BYTES = 4

# Optimizer state bytes per trainable parameter. AdamW keeps two fp32 moments (8 bytes); bitsandbytes' 8-bit
# optimizers keep two 8-bit moments plus one fp32 absmax per 256-value block (Dettmers et al. 2022, "8-bit
# Optimizers via Block-wise Quantization"): 2 + 8/256 bytes. Paged variants hold the same state, evicted to CPU
# only under memory pressure. Lion keeps one moment; SGD without momentum none.
OPTIMIZER_STATE_BYTES = {
    "adamw_torch": 8.0, "adamw_torch_fused": 8.0, "adamw_hf": 8.0, "adamw": 8.0, "paged_adamw_32bit": 8.0,
    "adamw_8bit": 2 + 8 / 256, "adamw_bnb_8bit": 2 + 8 / 256, "paged_adamw_8bit": 2 + 8 / 256,
    "lion_32bit": 4.0, "paged_lion_32bit": 4.0, "lion_8bit": 1 + 4 / 256, "paged_lion_8bit": 1 + 4 / 256,
    "adafactor": 0.1, "sgd": 0.0,
}

# bitsandbytes NF4 (QLoRA, Dettmers et al. 2023, section 3): 4-bit weights in blocks of 64 with one fp32 absmax
# each (32/64 = 0.5 extra bits a weight); double quantization stores the absmax in 8 bits with an fp32 constant
# per 256 blocks (8/64 + 32/(64*256) = 0.127 extra bits a weight).
NF4_BITS = {"nf4": 4 + 32 / 64, "nf4-dq": 4 + 8 / 64 + 32 / (64 * 256)}
INT8_BITS = 8 + 32 / 4096  # LLM.int8: int8 weights plus one fp32 scale per output row (rows of ~4k inputs)

# CUDA context and kernels: about 300-500 MiB with lazy module loading (CUDA >= 11.7); torch does not count it
# in max_memory_reserved. The caching allocator's reserved memory runs above what tensors occupy; 8% is our
# starting allowance, to be calibrated against measured peaks (bench/results).
CUDA_CONTEXT_BYTES = 512 * MIB
ALLOCATOR_OVERHEAD = 0.08

QUANTIZATIONS = ("none", "nf4", "nf4-dq", "int8")


@dataclass(frozen=True)
class TrainingShape:
    """What the estimator needs to know about a run."""

    precision: str = "bf16"  # compute and base-weight dtype: bf16, fp16 or fp32
    quantization: str = "none"  # none (16-bit LoRA), nf4 / nf4-dq (QLoRA), int8
    lora_r: int = 16
    target_modules: tuple[str, ...] | str = "all-linear"
    optimizer: str = "adamw_torch"
    micro_batch: int = 1
    seq_len: int = 2048
    gradient_checkpointing: bool = True
    lora_dropout: float = 0.0
    on_gpu: bool = True  # False: CPU training, no CUDA context or allocator slack

    @property
    def tokens(self) -> int:
        return self.micro_batch * self.seq_len


@dataclass
class MemoryTerm:
    name: str
    bytes: float
    formula: str


@dataclass
class MemoryBreakdown:
    terms: list[MemoryTerm] = field(default_factory=list)
    trainable_parameters: int = 0

    def add(self, name: str, value: float, formula: str) -> None:
        self.terms.append(MemoryTerm(name, value, formula))

    def __getitem__(self, name: str) -> float:
        return next(term.bytes for term in self.terms if term.name == name)

    @property
    def total(self) -> float:
        """Everything the GPU holds at the peak, CUDA context included (what nvidia-smi would show)."""
        return sum(term.bytes for term in self.terms)

    @property
    def torch_reserved(self) -> float:
        """The peak torch's allocator reserves (torch.cuda.max_memory_reserved): the total less the context."""
        return self.total - sum(term.bytes for term in self.terms if term.name == "cuda context")

    def as_dict(self) -> dict[str, Any]:
        return {"total_bytes": round(self.total), "torch_reserved_bytes": round(self.torch_reserved),
                "trainable_parameters": self.trainable_parameters,
                "terms": [{"name": t.name, "bytes": round(t.bytes), "formula": t.formula} for t in self.terms]}


def targeted_linears(model: Any, targets: Iterable[str] | str) -> dict[str, tuple[int, int]]:
    """The per-layer linear modules LoRA wraps: all of them for "all-linear", else those named."""
    shapes = model.linear_shapes()
    if isinstance(targets, str):
        targets = shapes if targets == "all-linear" else [t.strip() for t in targets.split(",")]
    return {name: shapes[name] for name in targets if name in shapes}


def lora_parameters(model: Any, r: int, targets: Iterable[str] | str = "all-linear") -> int:
    """Trainable LoRA parameters: r x (in + out) for each wrapped linear in each layer (Hu et al. 2021)."""
    per_layer = sum(r * (fan_in + fan_out) for fan_in, fan_out in targeted_linears(model, targets).values())
    return per_layer * model.layers


def weight_bytes(model: Any, shape: TrainingShape) -> tuple[float, str]:
    """Base weights: all in the compute dtype, or the layers' linears quantized and the rest kept in 16-bit."""
    counts = model.parameters()
    dtype = DTYPE_BYTES[shape.precision]
    if shape.quantization == "none":
        return counts["total"] * dtype, f"{counts['total']:,} parameters x {dtype} bytes ({shape.precision})"
    linear = model.layers * sum(fan_in * fan_out for fan_in, fan_out in model.linear_shapes().values())
    rest = counts["total"] - linear  # embeddings, output layer and norms stay in 16-bit (bitsandbytes skips them)
    bits = NF4_BITS.get(shape.quantization, INT8_BITS)
    return (linear * bits / 8 + rest * 2,
            f"{linear:,} linear weights x {bits:.3f} bits ({shape.quantization}) + {rest:,} others x 2 bytes")


def activation_bytes_per_token_layer(model: Any, shape: TrainingShape) -> float:
    """What one decoder layer saves for backward, per token, with frozen base weights and SDPA attention.

    Frozen linears need no saved input for their own weight gradient, but the LoRA branch does (it is the
    same tensor as the layer input, saved once). Counted, in the compute dtype unless noted:
      - two RMSNorms: the fp32 upcast input (4h bytes) and the normalised output (h);
      - attention: q, k, v after RoPE and the SDPA output, which is also o_proj's input (flash/SDPA keep a
        logsumexp per head, not the s x s score matrix; Dao 2022);
      - SwiGLU MLP: gate and up outputs, SiLU(gate), and their product (down_proj's input): 4 x intermediate;
      - LoRA dropout > 0: each wrapped module keeps its own dropped input and a 1-byte mask.
    This follows the per-tensor accounting of Korthikanti et al. 2022 ("Reducing Activation Recomputation in
    Large Transformer Models", section 4.1), adapted to Llama-style layers and frozen weights.
    """
    a = DTYPE_BYTES[shape.precision]
    h, inter = model.hidden, model.intermediate
    q_width, kv_width = model.heads * model.head_dim, model.kv_heads * model.head_dim
    norms = 2 * (4 * h + a * h)
    attention = a * (2 * q_width + 2 * kv_width)
    mlp = 4 * a * inter
    dropout = 0.0
    if shape.lora_dropout > 0:
        dropout = sum((a + 1) * fan_in for fan_in, _ in targeted_linears(model, shape.target_modules).values())
    return norms + attention + mlp + dropout


def estimate_memory(model: Any, shape: TrainingShape) -> MemoryBreakdown:
    """Peak memory of one training step on one GPU, term by term (see the module docstring)."""
    if shape.quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {shape.quantization!r}; expected one of {QUANTIZATIONS}")
    out = MemoryBreakdown()
    weights, formula = weight_bytes(model, shape)
    out.add("base weights", weights, formula)

    trainable = lora_parameters(model, shape.lora_r, shape.target_modules)
    out.trainable_parameters = trainable
    out.add("LoRA weights", trainable * ADAPTER_BYTES, f"{trainable:,} adapter parameters x 4 bytes (fp32)")
    out.add("LoRA gradients", trainable * ADAPTER_GRAD_BYTES, f"{trainable:,} x 4 bytes (fp32)")
    state = OPTIMIZER_STATE_BYTES.get(shape.optimizer, 8.0)
    out.add("optimizer states", trainable * state, f"{trainable:,} x {state:g} bytes ({shape.optimizer})")

    a = DTYPE_BYTES[shape.precision]
    per_layer = activation_bytes_per_token_layer(model, shape)
    if shape.gradient_checkpointing:
        # Each layer keeps only its input; backward recomputes one layer at a time (transformers checkpoints
        # every decoder layer), so one layer's full activations exist at once.
        activations = shape.tokens * (model.layers * a * model.hidden + per_layer)
        formula = (f"{shape.tokens:,} tokens x ({model.layers} layers x {a * model.hidden:,} B checkpoint + "
                   f"{per_layer:,.0f} B for the layer being recomputed)")
    else:
        activations = shape.tokens * model.layers * per_layer
        formula = f"{shape.tokens:,} tokens x {model.layers} layers x {per_layer:,.0f} B"
    out.add("activations", activations, formula)

    # transformers' causal-LM loss upcasts the logits to fp32 (loss_utils.ForCausalLMLoss), and backward makes an
    # fp32 gradient of the same size: logits in the compute dtype + fp32 copy + fp32 gradient.
    logit_bytes = a + 4 + 4
    out.add("logits and loss", shape.tokens * model.vocab * logit_bytes,
            f"{shape.tokens:,} tokens x {model.vocab:,} vocab x {logit_bytes} B")
    if shape.on_gpu:
        tensors = sum(term.bytes for term in out.terms)
        out.add("allocator overhead", tensors * ALLOCATOR_OVERHEAD, f"{ALLOCATOR_OVERHEAD:.0%} of the tensors")
        out.add("cuda context", CUDA_CONTEXT_BYTES, "CUDA context and kernels (not in torch's counters)")
    return out

