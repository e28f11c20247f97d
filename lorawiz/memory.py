"""Peak training memory per GPU for LoRA and QLoRA, as a breakdown of named terms. Pure: no torch.

The terms follow what lorawiz's own stack (transformers 5 + peft + TRL's SFTTrainer, bf16 autocast, bitsandbytes
NF4 with peft's prepare_model_for_kbit_training) holds at the worst moment of a step, as measured tensor by tensor
by bench/memory_truth.py (its table is in bench/README.md). A step's memory is what stays (weights, adapters,
optimizer states) plus the larger of two moments:

- the loss: every layer's saved activations (or, with gradient checkpointing, each layer's input), and TRL's loss
  in 256-token chunks (or the whole logits for the plain "nll" loss; a sequence head's scores, which are tiny);
- the backward pass through one layer: the checkpoints not yet used, that layer recomputed, the gradients flowing
  through it, and the adapter gradients made so far.
Under data parallelism every GPU holds all of this for its own micro-batch (LoRA's gradient buckets are small), so
the figure is per GPU. What CUDA adds (context, allocator slack, kernels' workspaces) is the constants at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lorawiz.lora_size import lora_parameters, targeted_linears

GIB = 2**30
MIB = 2**20
DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}

# Optimizer state per trainable parameter, in units of the parameter's own bytes for torch's AdamW (two moments of
# the parameter's dtype: 2 x 4 bytes for fp32 adapters, 2 x 2 for the bf16 adapters of the QLoRA path), and in
# bytes for bitsandbytes' 8-bit optimizers: two 8-bit moments plus one fp32 absmax per 256-value block (Dettmers et
# al. 2022, "8-bit Optimizers via Block-wise Quantization"): 2 + 8/256. Paged variants hold the same state, evicted
# to CPU only under memory pressure. Lion keeps one moment; SGD without momentum none.
MOMENTS = {"adamw_torch": 2, "adamw_torch_fused": 2, "adamw_hf": 2, "adamw": 2, "paged_adamw_32bit": 2,
           "lion_32bit": 1, "paged_lion_32bit": 1, "sgd": 0}
EIGHT_BIT_STATE_BYTES = {"adamw_8bit": 2 + 8 / 256, "adamw_bnb_8bit": 2 + 8 / 256, "paged_adamw_8bit": 2 + 8 / 256,
                         "lion_8bit": 1 + 4 / 256, "paged_lion_8bit": 1 + 4 / 256}
ADAFACTOR_STATE_BYTES = 0.1  # factored second moments: rows + columns, a few percent of the parameters
ADAPTER_BYTES = 4  # for callers that size checkpoints (train/diskspace): fp32 adapters, and their optimizer states:
OPTIMIZER_STATE_BYTES = {name: 4.0 * moments for name, moments in MOMENTS.items()} | EIGHT_BIT_STATE_BYTES | {
    "adafactor": ADAFACTOR_STATE_BYTES}

# bitsandbytes NF4 (QLoRA, Dettmers et al. 2023, section 3): 4-bit weights in blocks of 64 with one fp32 absmax
# each (32/64 = 0.5 extra bits a weight); double quantization stores the absmax in 8 bits with an fp32 constant
# per 256 blocks (8/64 + 32/(64*256) = 0.127 extra bits a weight). Measured: 1,524.3 and 1,481.1 MiB for
# Llama-3.2-1B's weights, as these give.
NF4_BITS = {"nf4": 4 + 32 / 64, "nf4-dq": 4 + 8 / 64 + 32 / (64 * 256)}
INT8_BITS = 8 + 32 / 4096  # LLM.int8: int8 weights plus one fp32 scale per output row (rows of ~4k inputs)
QUANTIZATIONS, SHARDINGS = ("none", "nf4", "nf4-dq", "int8"), ("none", "fsdp", "zero3")

# TRL's SFTTrainer (1.14) computes the loss in chunks of 256 tokens, each checkpointed. At a chunk's worst moment
# four [chunk, vocab] fp32 tensors are alive: the upcast logits, log-softmax, its exp and their product (the
# entropy it logs). Measured: 501 MiB for a 128,256-token vocabulary, at every sequence length.
LOSS_CHUNK_TOKENS = 256
LOSS_CHUNK_FP32_TENSORS = 4
# Gemma 2 caps its logits (final_logit_softcapping: softcap x tanh(logits / softcap)): one more [chunk, vocab] fp32
# tensor at the chunk's backward (measured: 5 x 250 MiB for its 256,000-token vocabulary).
LOGIT_SOFTCAPPING = frozenset({"gemma2"})
# The plain "nll" loss peaks in its backward with three whole [tokens, vocab] fp32 tensors: the log-softmax it saved,
# nll_loss's gradient and log-softmax's (measured: 3 x 250.5 MiB for 512 tokens of a 128,256-token vocabulary).
NLL_LOGIT_BYTES = 4 + 4 + 4
# With softcapping the nll path also keeps tanh's output in the compute dtype for its backward (measured on Gemma 2 at
# 1,024 tokens: 500 MiB of bf16 [1024, 256000] beside the three fp32 tensors; the held-out cell was 5.3% under
# before this term).

# TRL's DPOTrainer and KTOTrainer (1.14) take the answers' log-probabilities from the whole logits: the backward of
# its selective log-softmax holds four [tokens, vocab] fp32 tensors (the upcast logits, its stacked rows, the
# gradient buffer and its scatter; measured on Llama-3.2-1B, DPO at 2 x 512 tokens: 4 x 500 MiB). The reference's
# logits are freed before then. This is the CPU path; on CUDA, TRL's fused Triton kernel may hold less. ORPO's SFT
# term adds its own fp32 log-softmax over the chosen sequences (measured: 250 MiB for 511 tokens).
PREFERENCE_LOGIT_BYTES = 4 * 4

# Architectures transformers runs with eager attention (no SDPA path: gpt-oss's attention sinks), which keeps each
# head's [seq, seq + 1] softmax for backward (modeling_gpt_oss.eager_attention_forward).
EAGER_ATTENTION = frozenset({"gpt_oss"})

# CUDA context and kernels: about 300-500 MiB with lazy module loading (CUDA >= 11.7); torch does not count it
# in max_memory_reserved. The caching allocator's reserved memory runs above what tensors occupy; 8% is our
# starting allowance, to be calibrated against measured peaks on a GPU (not yet done: no GPU run has measured it).
CUDA_CONTEXT_BYTES = 512 * MIB
ALLOCATOR_OVERHEAD = 0.08


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
    loss: str = "chunked_nll"  # TRL's loss_type: chunked_nll (its default) or nll; head: a sequence head's scores;
    # preference: DPO's and KTO's log-probabilities from whole logits; orpo: those and its SFT term
    gradient_accumulation: int = 1  # above 1 the adapter gradients stay alive through the forward passes too
    on_gpu: bool = True  # False: CPU training, no CUDA context or allocator slack
    adapted_layers: int | None = None  # layers_to_transform: how many decoder layers get adapters (None: all)
    sharding: str = "none"  # none: each GPU holds the whole model (one GPU, data parallel); fsdp; zero3
    shards: int = 1  # the GPUs (of all machines) that sharded weights, adapters and optimizer states divide among
    offload: bool = False  # sharded parameters, gradients and optimizer states kept in CPU RAM (FSDP/ZeRO offload)
    sequences: int = 1  # sequences a row puts through the model: 2 for a DPO pair (chosen and rejected at once)
    passes_without_gradients: int = 0  # forward passes that train nothing: DPO's and KTO's reference (and KL)

    @property
    def tokens(self) -> int:
        return self.micro_batch * self.seq_len * self.sequences

    @property
    def quantized(self) -> bool:
        return self.quantization != "none"

    @property
    def sharded(self) -> bool:
        return self.sharding != "none"


@dataclass
class MemoryTerm:
    name: str
    bytes: float
    formula: str


@dataclass
class MemoryBreakdown:
    terms: list[MemoryTerm] = field(default_factory=list)
    trainable_parameters: int = 0
    moment: str = ""  # when the peak happens: "loss" or "backward"

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
                "trainable_parameters": self.trainable_parameters, "peak_moment": self.moment,
                "terms": [{"name": t.name, "bytes": round(t.bytes), "formula": t.formula} for t in self.terms]}


def weight_bytes(model: Any, shape: TrainingShape) -> tuple[float, str]:
    """Base weights: all in the compute dtype; or, quantized, the layers' Linears in 4 (8) bits and everything
    bitsandbytes leaves alone (embeddings, lm_head, norms, a mixture of experts' experts and router, which are not
    Linears) in the compute dtype (lorawiz undoes prepare_model_for_kbit_training's fp32 upcast of those:
    lorawiz.train.backends.hf.restore_loaded_dtypes)."""
    counts = model.parameters()
    dtype, shipped = DTYPE_BYTES[shape.precision], ""
    total = counts["total"] - (counts["lm_head"] if shape.loss == "head" else 0)  # a sequence head has no lm_head
    if model.shipped_quantization == "mxfp4":  # transformers trains MXFP4 only dequantized (Mxfp4Config)
        shipped = "; its MXFP4 experts dequantized, as transformers trains them"
    if not shape.quantized:
        return total * dtype, f"{total:,} parameters x {dtype} bytes ({shape.precision}){shipped}"
    linear = model.layers * sum(fan_in * fan_out for fan_in, fan_out in model.linear_shapes().values())
    rest = total - linear
    bits = NF4_BITS.get(shape.quantization, INT8_BITS)
    return (linear * bits / 8 + rest * dtype,
            f"{linear:,} Linear weights x {bits:.3f} bits ({shape.quantization}) + {rest:,} others x {dtype} bytes"
            + shipped)


def adapter_bytes(shape: TrainingShape) -> int:
    """peft keeps adapters in fp32 (autocast_adapter_dtype); TRL's SFTTrainer casts a quantized model's adapters to
    bf16, following the QLoRA paper (sft_trainer.py: "the PEFT adapter weights are converted to bf16")."""
    return 2 if shape.quantized else 4  # TRL casts to bf16 whatever the compute dtype


def optimizer_bytes(shape: TrainingShape, trainable: int) -> tuple[float, str]:
    if shape.optimizer in EIGHT_BIT_STATE_BYTES:
        state = EIGHT_BIT_STATE_BYTES[shape.optimizer]
        return trainable * state, f"{trainable:,} x {state:g} bytes ({shape.optimizer})"
    if shape.optimizer == "adafactor":
        return trainable * ADAFACTOR_STATE_BYTES, f"{trainable:,} x {ADAFACTOR_STATE_BYTES} bytes (adafactor)"
    moments, size = MOMENTS.get(shape.optimizer, 2), adapter_bytes(shape)
    return trainable * moments * size, f"{trainable:,} x {moments} moments x {size} bytes ({shape.optimizer})"


def layer_activation_bytes(model: Any, shape: TrainingShape) -> tuple[float, str]:
    """What one decoder layer saves for backward, per token (measured term by term by bench/memory_truth.py).

      - RMSNorms: the fp32 input and the fp32 reciprocal RMS (4h + 4 bytes each);
      - attention: q, k, v after RoPE, the SDPA output (o_proj's input) and its fp32 logsumexp per head (eager
        attention: k and v repeated to every head and the softmax over the sequence);
      - SwiGLU MLP: the gate and up outputs and SiLU(gate) (3 x intermediate); a mixture of experts does this for
        each of the k experts a token goes to, with the token's input and output per expert and the router logits;
      - LoRA: with fp32 adapters each wrapped Linear keeps its own bf16 copy of its input (peft casts the input to
        the adapter's dtype, autocast casts it back); with the bf16 adapters of the QLoRA path the inputs are kept
        as they are (the two norms' outputs, down_proj's input); with dropout > 0 each wrapped Linear keeps its
        dropped input and the mask (CUDA's is 1-byte bool; the CPU's has the dropped input's dtype: the held-out
        CPU cell was 10.2% under with a 1-byte mask); and each keeps the r-wide output of A;
    in the compute dtype.
    This follows the per-tensor accounting of Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large
    Transformer Models", section 4.1), adapted to Llama-style layers with frozen weights.
    """
    a = DTYPE_BYTES[shape.precision]
    h = model.hidden
    q_width, kv_width = model.heads * model.head_dim, model.kv_heads * model.head_dim
    norms = model.norms_per_layer * (4 * h + 4)
    if model.architecture in EAGER_ATTENTION:  # k and v repeated to every head, and the [heads, seq+1] softmax
        attention = a * (4 * q_width + model.heads * (shape.seq_len + 1))
    else:
        attention = a * (2 * q_width + 2 * kv_width) + 4 * model.heads
    if model.is_moe:
        k, width = model.active_experts, model.expert_intermediate
        mlp = k * (a * (2 * h + 3 * width) + 4) + 4 * model.experts
        if model.shared_expert_intermediate:
            mlp += 3 * a * model.shared_expert_intermediate
    else:
        mlp = 3 * a * model.intermediate
    wrapped = targeted_linears(model, shape.target_modules)
    lora = sum(a * shape.lora_r for _ in wrapped)
    if shape.lora_dropout > 0:
        mask = 1 if shape.on_gpu else adapter_bytes(shape)  # the dropout runs in the adapters' dtype
        lora += sum((a + mask) * fan_in for fan_in, _ in wrapped.values())
    elif adapter_bytes(shape) != a:  # peft casts the input to the adapters' dtype, autocast casts it back
        lora += sum(a * fan_in for fan_in, _ in wrapped.values())
    else:  # bf16 adapters take the Linears' own inputs: the norms' outputs and down_proj's (o_proj's is SDPA's)
        sources = {"input_layernorm": h, "post_attention_layernorm": h, "down_proj": model.intermediate}
        feeds = {"q_proj": "input_layernorm", "k_proj": "input_layernorm", "v_proj": "input_layernorm",
                 "qkv_proj": "input_layernorm", "gate_proj": "post_attention_layernorm",
                 "up_proj": "post_attention_layernorm", "gate_up_proj": "post_attention_layernorm",
                 "down_proj": "down_proj"}
        lora += a * sum(sources[source] for source in {feeds[name] for name in wrapped if name in feeds})
    per_token = norms + attention + mlp + lora
    return per_token, (f"norms {norms:,} + attention {attention:,} + MLP {mlp:,} + LoRA inputs {lora:,} "
                       f"= {per_token:,} B a token")


def backward_temporary_bytes(model: Any, shape: TrainingShape) -> tuple[float, str]:
    """Per token, what the backward pass through the MLP makes on top of the layer's saved activations: two
    intermediate-wide gradients (SiLU's and the product's), an fp32 one where peft's fp32 adapters upcast the
    down projection's input, and the hidden-wide gradient with its fp32 twin (measured on Llama-3.2-1B at 4,096
    tokens: 730.7 MiB for the layer being recomputed)."""
    a = DTYPE_BYTES[shape.precision]
    upcast = 4 if adapter_bytes(shape) != a else 0
    width = (model.active_experts * model.expert_intermediate + model.shared_expert_intermediate if model.is_moe
             else model.intermediate)
    per_token = (2 * a + upcast) * width + (a + upcast) * model.hidden
    return per_token, f"({2 * a + upcast} B x {width:,} + {a + upcast} B x {model.hidden:,}) gradients in flight"


def loss_for(settings: Any) -> str:
    """TrainingShape.loss for a run's settings: a sequence head's scores, DPO's log-probabilities, else TRL's
    chunked loss."""
    if settings.get("method") in ("dpo", "kto", "orpo"):
        return "orpo" if settings["method"] == "orpo" else "preference"
    return "head" if settings.get("head") == "sequence" else "chunked_nll"


def loss_bytes(model: Any, shape: TrainingShape) -> tuple[float, str]:
    """The loss at its worst moment, over the final hidden states."""
    tokens = shape.tokens
    if shape.loss == "head":  # the last token's hidden state times the score head: [rows, labels], no vocabulary
        return 0.0, f"{shape.micro_batch} rows x the labels' scores (a sequence head: no vocabulary-sized logits)"
    if shape.loss in ("preference", "orpo"):  # whole logits: TRL's DPO, KTO and ORPO take log-probabilities
        size = tokens * model.vocab * PREFERENCE_LOGIT_BYTES
        formula = (f"{tokens:,} tokens x {model.vocab:,} vocab x {PREFERENCE_LOGIT_BYTES} B (whole logits, in the "
                   "log-softmax's backward)")
        if shape.loss == "orpo":  # and its SFT term's log-softmax over the chosen answers, in fp32
            chosen = tokens // shape.sequences
            size += chosen * model.vocab * 4
            formula += f" + {chosen:,} chosen tokens x {model.vocab:,} x 4 B (the SFT term's log-softmax)"
        return size, formula
    if shape.loss == "nll":
        per = NLL_LOGIT_BYTES + (DTYPE_BYTES[shape.precision] if model.architecture in LOGIT_SOFTCAPPING else 0)
        size = tokens * model.vocab * per
        return size, f"{tokens:,} tokens x {model.vocab:,} vocab x {per} B (whole logits)"
    chunk = min(LOSS_CHUNK_TOKENS, tokens)
    count = LOSS_CHUNK_FP32_TENSORS + (1 if model.architecture in LOGIT_SOFTCAPPING else 0)
    size = count * chunk * model.vocab * 4
    formula = f"{count} x {chunk} tokens x {model.vocab:,} vocab x 4 B (TRL's chunked loss)"
    return size, formula


def gathered_bytes(model: Any, shape: TrainingShape, weights: float) -> tuple[float, str]:
    """What a sharded run holds unsharded at once: FSDP2 all-gathers one decoder layer while it computes and
    prefetches the next (torch.distributed.fsdp.fully_shard: implicit forward and backward prefetch), and
    accelerate keeps the final norm and lm_head gathered from their forward to their backward
    (reshard_after_forward=False for that group, accelerate.utils.fsdp_utils.fsdp2_prepare_model). lorawiz's ZeRO-3
    config caps DeepSpeed's live parameters at the same two layers (stage3_max_live_parameters). `weights`: all the
    base weights' bytes (weight_bytes)."""
    counts = model.parameters()
    dtype = DTYPE_BYTES[shape.precision]
    ends = (counts["embeddings"] + counts["lm_head"]) * dtype  # never quantized by bitsandbytes
    layer = (weights - ends) / model.layers
    head = (counts["lm_head"] or counts["embeddings"]) * dtype
    return 2 * layer + head, (f"2 decoder layers unsharded ({layer / GIB:.2f} GiB each: the one computing and the "
                              f"one prefetched) + lm_head kept whole through the loss ({head / GIB:.2f} GiB)")


def _add_state(out: MemoryBreakdown, model: Any, shape: TrainingShape, trainable: int) -> None:
    """Weights, adapters and optimizer states: whole on every GPU, or divided among the shards (nothing of them on
    the GPU when offloaded to CPU RAM, then the gathered layers only)."""
    weights, formula = weight_bytes(model, shape)
    size = adapter_bytes(shape)
    optimizer, optimizer_formula = optimizer_bytes(shape, trainable)
    state = [("base weights", weights, formula),
             ("LoRA weights", trainable * size, f"{trainable:,} adapter parameters x {size} bytes"),
             ("optimizer states", optimizer, optimizer_formula)]
    if not shape.sharded:
        for term in state:
            out.add(*term)
        return
    if not shape.offload:
        for name, value, why in state:
            out.add(name, value / shape.shards, f"({why}) / {shape.shards} GPUs, sharded")
    out.add("gathered weights", *gathered_bytes(model, shape, weights))


def estimate_memory(model: Any, shape: TrainingShape) -> MemoryBreakdown:
    """Peak memory of one training step on one GPU, term by term (see the module docstring)."""
    if shape.quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {shape.quantization!r}; expected one of {QUANTIZATIONS}")
    if shape.sharding not in SHARDINGS:
        raise ValueError(f"unknown sharding {shape.sharding!r}; expected one of {SHARDINGS}")
    out = MemoryBreakdown()
    # layers_to_transform: fewer adapters, exactly; their activations are still counted on every layer (an upper bound)
    trainable = lora_parameters(model, shape.lora_r, shape.target_modules, shape.adapted_layers)
    out.trainable_parameters = trainable
    size = adapter_bytes(shape)
    _add_state(out, model, shape, trainable)

    a = DTYPE_BYTES[shape.precision]
    tokens, h, layers = shape.tokens, model.hidden, model.layers
    per_token, per_token_formula = layer_activation_bytes(model, shape)
    # Autocast caches the bf16 copy of each fp32 adapter weight for the whole forward pass.
    copies = trainable * 2 if size == 4 and a == 2 else 0
    loss, loss_formula = loss_bytes(model, shape)
    # Sharded, each GPU keeps its shard of the adapter gradients (reduce-scattered; offloaded: none of them)
    grads = 0 if shape.offload else trainable * size / shape.shards
    # Adapters on a mixture of experts' fused experts (peft's ParamWrapper) merge W + BA for a layer's forward: a
    # full copy of its experts, which backward keeps, with a weight-shaped gradient of the down experts.
    merged = (model.expert_parameters() * a
              if shape.target_modules == "all-linear" and model.is_moe and model.lora_wraps_experts else 0)
    if shape.gradient_checkpointing:
        kept = tokens * layers * a * h  # each layer's input
        kept_formula = f"{tokens:,} tokens x {layers} layers x {a * h:,} B (each layer's input, checkpointed)"
    else:
        kept = tokens * layers * per_token + layers * merged
        kept_formula = f"{tokens:,} tokens x {layers} layers x ({per_token_formula})" + (
            f" + {layers} layers x {merged:,} B (experts merged with their adapters)" if merged else "")
    # The loss moment: all that is kept, the final norm's output and the tokens regathered for the chunks.
    moments = {"loss": [("activations", kept, kept_formula)], "backward": []}
    if copies:
        moments["loss"].append(("adapter bf16 copies", copies, f"{trainable:,} x 2 B (autocast's cache of the "
                                                              "fp32 adapters)"))
    moments["loss"].append(("logits and loss", loss + tokens * h * (4 + 2 * a),
                            loss_formula + f" + {tokens:,} x {h:,} x {4 + 2 * a} B (final norm, regathered tokens)"))
    if shape.gradient_accumulation > 1:
        moments["loss"].append(("LoRA gradients", grads, f"{trainable:,} x {size} B (kept across micro-batches)"))
    # The backward moment, through the first layer it reaches (all that is kept, that layer recomputed, its
    # gradients in flight, its adapters' gradients) or the last (every adapter gradient made, one layer's input
    # left), whichever holds more.
    flowing, flowing_formula = backward_temporary_bytes(model, shape)
    if shape.gradient_checkpointing:
        layer = tokens * per_token + copies / layers + merged * 4 / 3
        layer_formula = f"{tokens:,} tokens x {per_token:,} B + its adapter copies (the layer recomputed)" + (
            f" + 4/3 x {merged:,} B (its experts merged with their adapters, and a gradient)" if merged else "")
    else:
        layer = copies + merged / 3
        layer_formula = "the adapters' autocast copies, saved for backward" + (
            f" + {merged / 3:,.0f} B (an expert gradient)" if merged else "")
    early = grads if shape.gradient_accumulation > 1 else grads / layers  # one layer's, unless accumulating
    late = tokens * h * a if shape.gradient_checkpointing else kept / layers  # what the first layer still holds
    if kept + early >= late + grads:
        held, grads_now, grads_formula = (kept, kept_formula), early, f"{trainable:,} x {size} B" + (
            "" if shape.gradient_accumulation > 1 else f" / {layers} layers (the first layer's)")
    else:
        held, grads_now, grads_formula = (late, "the first layer's"), grads, f"{trainable:,} x {size} B (all)"
    if shape.sharded:
        grads_formula += " in CPU RAM (offloaded)" if shape.offload else f" / {shape.shards} GPUs (sharded)"
    moments["backward"] = [("activations", *held),
                           ("layer in backward", layer + tokens * flowing,
                            f"{layer_formula} + {tokens:,} tokens x {flowing_formula}"),
                           ("LoRA gradients", grads_now, grads_formula)]
    out.moment = max(moments, key=lambda moment: sum(term[1] for term in moments[moment]))
    for term in moments[out.moment]:
        out.add(*term)
    if shape.on_gpu:
        tensors = sum(term.bytes for term in out.terms)
        out.add("allocator overhead", tensors * ALLOCATOR_OVERHEAD, f"{ALLOCATOR_OVERHEAD:.0%} of the tensors")
        out.add("cuda context", CUDA_CONTEXT_BYTES, "CUDA context and kernels (not in torch's counters)")
    return out
