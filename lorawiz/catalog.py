"""Architecture facts of popular base models: the shapes a training-memory estimator needs.

Pure: the standard library only. Reading a model's config.json from disk or the Hub is lorawiz.model_facts.

Every number in `CATALOG` is the value of that key in the model's own `config.json` (checked against copies of the
hub files, litgpt's `litgpt/config.py` and google/gemma_pytorch's `gemma/config.py`). `parameters()` reproduces the
count the Hugging Face Hub reports for each checkpoint (`safetensors.total`; see tests/unit/test_catalog.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lorawiz.errors import LorawizError

# Architectures whose attention and MLP projections are fused into one Linear each (modeling_phi3.py:
# `qkv_proj`, `gate_up_proj`), so LoRA targets those names instead of q/k/v and gate/up.
FUSED_PROJECTIONS = frozenset({"phi3"})

# Structure that transformers hard-codes per architecture (modeling_<type>.py, transformers 5.17). A flag not
# fixed here comes from the config (`attention_bias`, `mlp_bias`), as LlamaAttention and LlamaMLP read it.
_ARCHITECTURE_TRAITS: dict[str, dict[str, Any]] = {
    "qwen2": {"qkv_bias": True, "output_bias": False, "mlp_bias": False},  # q/k/v bias=True, o_proj bias=False
    "qwen3": {"qk_norm": True, "mlp_bias": False},  # q_norm and k_norm over head_dim
    "mistral": {"qkv_bias": False, "output_bias": False, "mlp_bias": False},
    "gemma2": {"norms_per_layer": 4, "mlp_bias": False},  # pre/post norms around attention and around the MLP
    "gemma3_text": {"qk_norm": True, "norms_per_layer": 4, "mlp_bias": False},
    "phi3": {"qkv_bias": False, "output_bias": False, "mlp_bias": False},
    # Mixtures of experts (modeling_mixtral.py, modeling_qwen3_moe.py, modeling_gpt_oss.py, modeling_qwen2_moe.py).
    "mixtral": {"qkv_bias": False, "output_bias": False, "mlp_bias": False, "lora_wraps_experts": True},
    "qwen3_moe": {"qk_norm": True, "mlp_bias": False, "lora_wraps_experts": True},
    "qwen2_moe": {"qkv_bias": True, "output_bias": False, "mlp_bias": False, "lora_wraps_experts": True},
    "gpt_oss": {"expert_bias": True, "attention_sinks": True, "mlp_bias": False},
}

# Values that shipped config.json files leave out because the transformers config class supplies them
# (class defaults in configuration_<type>.py, transformers 5.17). Gemma 3's multimodal configs carry a sparse
# `text_config` with no vocab_size or max_position_embeddings, for instance.
_CONFIG_CLASS_DEFAULTS: dict[str, dict[str, Any]] = {
    "gemma": {"head_dim": 256, "tie_word_embeddings": True},
    "gemma2": {
        "vocab_size": 256000,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": True,
    },
    "gemma3_text": {
        "vocab_size": 262208,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "max_position_embeddings": 131072,
        "tie_word_embeddings": True,
    },
    "qwen3": {"head_dim": 128},
}

# Multimodal wrappers whose text part has its own model_type (a text_config may omit it).
_TEXT_MODEL_TYPES = {"gemma3": "gemma3_text"}

_REQUIRED_KEYS = (
    "hidden_size",
    "num_hidden_layers",
    "intermediate_size",
    "num_attention_heads",
    "vocab_size",
    "max_position_embeddings",
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_LOCAL_HINT = "Pass the path of a local model folder (the one holding config.json), or a hub id when online."


@dataclass(frozen=True)
class ModelFacts:
    """The architecture of one decoder-only model, as far as parameter counts and memory go."""

    name: str
    """Hub id of the model (or the local folder it was read from), e.g. "meta-llama/Llama-3.1-8B"."""
    architecture: str
    """transformers `model_type` of the text model: llama, qwen2, qwen3, mistral, gemma2, gemma3_text, phi3."""
    layers: int
    """Decoder blocks (`num_hidden_layers`)."""
    hidden: int
    """Residual width (`hidden_size`)."""
    intermediate: int
    """MLP width (`intermediate_size`); gate, up and down projections all use it."""
    heads: int
    """Query heads (`num_attention_heads`)."""
    kv_heads: int
    """Key/value heads (`num_key_value_heads`); fewer than `heads` under grouped-query attention."""
    head_dim: int
    """Width of one head. Not always hidden / heads: Qwen3-4B has 2560 / 32 = 80 but head_dim 128."""
    vocab: int
    """Rows of the embedding matrix (`vocab_size`, padded), which can exceed the tokenizer's size."""
    tied_embeddings: bool
    """True when lm_head reuses the embedding matrix (`tie_word_embeddings`)."""
    context_length: int
    """`max_position_embeddings`: the longest sequence the position encoding is configured for."""
    qkv_bias: bool = False
    """q/k/v projections carry a bias (Qwen2 always does)."""
    output_bias: bool = False
    """o_proj carries a bias."""
    mlp_bias: bool = False
    """gate/up/down projections carry biases."""
    qk_norm: bool = False
    """RMSNorm over head_dim on queries and keys (Qwen3, Gemma 3)."""
    norms_per_layer: int = 2
    """RMSNorms of hidden width per block: 2 before attention and MLP, 4 in Gemma 2/3 (also after each)."""
    experts: int = 0
    """Routed experts per block (`num_local_experts` or `num_experts`); 0 for a dense model."""
    active_experts: int = 0
    """Experts each token is routed to (`num_experts_per_tok`)."""
    expert_intermediate: int = 0
    """MLP width of one expert (`moe_intermediate_size`; Mixtral and gpt-oss use `intermediate_size`)."""
    shared_expert_intermediate: int = 0
    """Width of the shared expert every token also passes (Qwen2-MoE `shared_expert_intermediate_size`), or 0."""
    expert_bias: bool = False
    """Experts and router carry biases (gpt-oss)."""
    attention_sinks: bool = False
    """One learned sink logit per attention head (gpt-oss `sinks`)."""
    lora_wraps_experts: bool = False
    """peft's "all-linear" also wraps the experts and router: it maps the Linears of the transformers 4 layout onto
    the fused parameters of transformers 5 for Mixtral- and Qwen-MoE-style blocks (peft 0.21,
    peft.utils.transformers_weight_conversion); gpt-oss had no such layout, so only its attention is wrapped."""
    shipped_quantization: str = ""
    """`quant_method` of the weights as shipped ("mxfp4" for gpt-oss); "" for 16-bit checkpoints."""
    counted: tuple[tuple[str, int], ...] = ()
    """Exact parameter counts from building the config on the meta device (lorawiz.model_facts), for a model not in
    the catalog: they win over the formula of `parameters()`."""
    aliases: tuple[str, ...] = ()
    """Short names accepted by `find_model`, e.g. ("llama3.1-8b", "llama-3.1-8b")."""
    hub_ids: tuple[str, ...] = ()
    """Every hub id with these facts: the base model and its instruct variants."""

    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of each LoRA-targetable Linear in one block, by its module name.

        transformers 5 stores a mixture-of-experts block's experts as 3-D parameters (`experts.gate_up_proj`,
        `experts.down_proj`) and its router as a bare parameter, so neither is a Linear: LoRA's "all-linear" and
        bitsandbytes both leave them alone (see `expert_parameters`). A shared expert is an ordinary MLP."""
        query = self.heads * self.head_dim
        key_value = self.kv_heads * self.head_dim
        if self.architecture in FUSED_PROJECTIONS:
            return {
                "qkv_proj": (self.hidden, query + 2 * key_value),
                "o_proj": (query, self.hidden),
                "gate_up_proj": (self.hidden, 2 * self.intermediate),
                "down_proj": (self.intermediate, self.hidden),
            }
        attention = {
            "q_proj": (self.hidden, query),
            "k_proj": (self.hidden, key_value),
            "v_proj": (self.hidden, key_value),
            "o_proj": (query, self.hidden),
        }
        mlp = self.shared_expert_intermediate if self.is_moe else self.intermediate
        if not mlp:
            return attention
        shapes = {**attention, "gate_proj": (self.hidden, mlp), "up_proj": (self.hidden, mlp),
                  "down_proj": (mlp, self.hidden)}
        if self.is_moe:
            shapes["shared_expert_gate"] = (self.hidden, 1)
        return shapes

    def expert_parameters(self) -> int:
        """Parameters of one block's routed experts (0 for a dense model): 3 x hidden x width per expert for the
        SwiGLU gate, up and down projections, plus their biases in gpt-oss."""
        if not self.is_moe:
            return 0
        per_expert = 3 * self.hidden * self.expert_intermediate
        if self.expert_bias:
            per_expert += 2 * self.expert_intermediate + self.hidden
        return self.experts * per_expert

    def router_parameters(self) -> int:
        """One block's router: a hidden x experts matrix (a bare parameter, not a Linear), with a bias in gpt-oss."""
        return self.experts * (self.hidden + (1 if self.expert_bias else 0)) if self.is_moe else 0

    def parameters(self) -> dict[str, int]:
        """Parameter counts: embeddings, decoder layers (plus the final norm), lm_head (0 when tied), total; of
        the layers, the routed experts' share ("experts") and what one token uses ("active": every parameter less
        the experts it is not routed to)."""
        if self.counted:
            return dict(self.counted)
        weights = sum(fan_in * fan_out for fan_in, fan_out in self.linear_shapes().values())
        biases = 0
        if self.qkv_bias:
            biases += (self.heads + 2 * self.kv_heads) * self.head_dim
        if self.output_bias:
            biases += self.hidden
        if self.mlp_bias:
            biases += 2 * self.intermediate + self.hidden
        norms = self.norms_per_layer * self.hidden + (2 * self.head_dim if self.qk_norm else 0)
        sinks = self.heads if self.attention_sinks else 0
        router = self.router_parameters()
        experts = self.layers * self.expert_parameters()
        embeddings = self.vocab * self.hidden
        layers = self.layers * (weights + biases + norms + sinks + router) + experts + self.hidden  # + final norm
        lm_head = 0 if self.tied_embeddings else self.vocab * self.hidden
        total = embeddings + layers + lm_head
        idle = round(experts * (1 - self.active_experts / self.experts)) if self.is_moe else 0
        return {"embeddings": embeddings, "layers": layers, "lm_head": lm_head, "total": total,
                "experts": experts, "active": total - idle}


def _model(
    architecture: str,
    hub_ids: tuple[str, ...],
    aliases: tuple[str, ...],
    *,
    layers: int,
    hidden: int,
    intermediate: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    vocab: int,
    tied: bool,
    context: int,
    **moe: Any,
) -> ModelFacts:
    """A catalog entry named after its first hub id, with the structure its architecture hard-codes."""
    traits = {"qkv_bias": False, "output_bias": False, "mlp_bias": False, "qk_norm": False, "norms_per_layer": 2}
    traits.update(_ARCHITECTURE_TRAITS.get(architecture, {}))
    traits.update(moe)
    return ModelFacts(
        name=hub_ids[0],
        architecture=architecture,
        layers=layers,
        hidden=hidden,
        intermediate=intermediate,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        vocab=vocab,
        tied_embeddings=tied,
        context_length=context,
        aliases=aliases,
        hub_ids=hub_ids,
        **traits,
    )


CATALOG: tuple[ModelFacts, ...] = (
    # Meta Llama 3.x (config.json of each repo; 3.3-70B was released as Instruct only).
    _model("llama", ("meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.2-1B-Instruct"), ("llama3.2-1b", "llama-3.2-1b"),
           layers=16, hidden=2048, intermediate=8192, heads=32, kv_heads=8, head_dim=64,
           vocab=128256, tied=True, context=131072),
    _model("llama", ("meta-llama/Llama-3.2-3B", "meta-llama/Llama-3.2-3B-Instruct"), ("llama3.2-3b", "llama-3.2-3b"),
           layers=28, hidden=3072, intermediate=8192, heads=24, kv_heads=8, head_dim=128,
           vocab=128256, tied=True, context=131072),
    _model("llama", ("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B-Instruct",
                     "meta-llama/Meta-Llama-3.1-8B", "meta-llama/Meta-Llama-3.1-8B-Instruct"),
           ("llama3.1-8b", "llama-3.1-8b"),
           layers=32, hidden=4096, intermediate=14336, heads=32, kv_heads=8, head_dim=128,
           vocab=128256, tied=False, context=131072),
    _model("llama", ("meta-llama/Llama-3.1-70B", "meta-llama/Llama-3.1-70B-Instruct",
                     "meta-llama/Meta-Llama-3.1-70B", "meta-llama/Meta-Llama-3.1-70B-Instruct"),
           ("llama3.1-70b", "llama-3.1-70b"),
           layers=80, hidden=8192, intermediate=28672, heads=64, kv_heads=8, head_dim=128,
           vocab=128256, tied=False, context=131072),
    _model("llama", ("meta-llama/Llama-3.1-405B", "meta-llama/Llama-3.1-405B-Instruct",
                     "meta-llama/Meta-Llama-3.1-405B", "meta-llama/Meta-Llama-3.1-405B-Instruct"),
           ("llama3.1-405b", "llama-3.1-405b"),
           layers=126, hidden=16384, intermediate=53248, heads=128, kv_heads=8, head_dim=128,
           vocab=128256, tied=False, context=131072),
    _model("llama", ("meta-llama/Llama-3.3-70B-Instruct",), ("llama3.3-70b", "llama-3.3-70b"),
           layers=80, hidden=8192, intermediate=28672, heads=64, kv_heads=8, head_dim=128,
           vocab=128256, tied=False, context=131072),
    # Qwen2.5. context is the base repo's max_position_embeddings; the -Instruct configs say 32768 and reach
    # 128K with YaRN rope scaling (Qwen2.5 model cards). The 7B and larger pad vocab to 152064.
    _model("qwen2", ("Qwen/Qwen2.5-0.5B", "Qwen/Qwen2.5-0.5B-Instruct"), ("qwen2.5-0.5b",),
           layers=24, hidden=896, intermediate=4864, heads=14, kv_heads=2, head_dim=64,
           vocab=151936, tied=True, context=32768),
    _model("qwen2", ("Qwen/Qwen2.5-1.5B", "Qwen/Qwen2.5-1.5B-Instruct"), ("qwen2.5-1.5b",),
           layers=28, hidden=1536, intermediate=8960, heads=12, kv_heads=2, head_dim=128,
           vocab=151936, tied=True, context=131072),
    _model("qwen2", ("Qwen/Qwen2.5-3B", "Qwen/Qwen2.5-3B-Instruct"), ("qwen2.5-3b",),
           layers=36, hidden=2048, intermediate=11008, heads=16, kv_heads=2, head_dim=128,
           vocab=151936, tied=True, context=32768),
    _model("qwen2", ("Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-7B-Instruct"), ("qwen2.5-7b",),
           layers=28, hidden=3584, intermediate=18944, heads=28, kv_heads=4, head_dim=128,
           vocab=152064, tied=False, context=131072),
    _model("qwen2", ("Qwen/Qwen2.5-14B", "Qwen/Qwen2.5-14B-Instruct"), ("qwen2.5-14b",),
           layers=48, hidden=5120, intermediate=13824, heads=40, kv_heads=8, head_dim=128,
           vocab=152064, tied=False, context=131072),
    _model("qwen2", ("Qwen/Qwen2.5-32B", "Qwen/Qwen2.5-32B-Instruct"), ("qwen2.5-32b",),
           layers=64, hidden=5120, intermediate=27648, heads=40, kv_heads=8, head_dim=128,
           vocab=152064, tied=False, context=131072),
    _model("qwen2", ("Qwen/Qwen2.5-72B", "Qwen/Qwen2.5-72B-Instruct"), ("qwen2.5-72b",),
           layers=80, hidden=8192, intermediate=29568, heads=64, kv_heads=8, head_dim=128,
           vocab=152064, tied=False, context=131072),
    # Qwen3: "Qwen/Qwen3-8B" is the post-trained (instruct/thinking) model, "-Base" the pretrained one; the
    # 32B has no public Base. context is the post-trained config's (the -Base configs say 32768).
    _model("qwen3", ("Qwen/Qwen3-0.6B", "Qwen/Qwen3-0.6B-Base"), ("qwen3-0.6b",),
           layers=28, hidden=1024, intermediate=3072, heads=16, kv_heads=8, head_dim=128,
           vocab=151936, tied=True, context=40960),
    _model("qwen3", ("Qwen/Qwen3-1.7B", "Qwen/Qwen3-1.7B-Base"), ("qwen3-1.7b",),
           layers=28, hidden=2048, intermediate=6144, heads=16, kv_heads=8, head_dim=128,
           vocab=151936, tied=True, context=40960),
    _model("qwen3", ("Qwen/Qwen3-4B", "Qwen/Qwen3-4B-Base"), ("qwen3-4b",),
           layers=36, hidden=2560, intermediate=9728, heads=32, kv_heads=8, head_dim=128,
           vocab=151936, tied=True, context=40960),
    _model("qwen3", ("Qwen/Qwen3-8B", "Qwen/Qwen3-8B-Base"), ("qwen3-8b",),
           layers=36, hidden=4096, intermediate=12288, heads=32, kv_heads=8, head_dim=128,
           vocab=151936, tied=False, context=40960),
    _model("qwen3", ("Qwen/Qwen3-14B", "Qwen/Qwen3-14B-Base"), ("qwen3-14b",),
           layers=40, hidden=5120, intermediate=17408, heads=40, kv_heads=8, head_dim=128,
           vocab=151936, tied=False, context=40960),
    _model("qwen3", ("Qwen/Qwen3-32B",), ("qwen3-32b",),
           layers=64, hidden=5120, intermediate=25600, heads=64, kv_heads=8, head_dim=128,
           vocab=151936, tied=False, context=40960),
    # Mistral 7B v0.3 (vocab extended to 32768, no sliding window).
    _model("mistral", ("mistralai/Mistral-7B-v0.3", "mistralai/Mistral-7B-Instruct-v0.3"),
           ("mistral-7b", "mistral-7b-v0.3"),
           layers=32, hidden=4096, intermediate=14336, heads=32, kv_heads=8, head_dim=128,
           vocab=32768, tied=False, context=32768),
    # Gemma 2: configs carry no tie_word_embeddings, so Gemma2Config's default (True) applies; also in
    # google/gemma_pytorch gemma/config.py (get_config_for_2b_v2, _9b, _27b).
    _model("gemma2", ("google/gemma-2-2b", "google/gemma-2-2b-it"), ("gemma2-2b", "gemma-2-2b"),
           layers=26, hidden=2304, intermediate=9216, heads=8, kv_heads=4, head_dim=256,
           vocab=256000, tied=True, context=8192),
    _model("gemma2", ("google/gemma-2-9b", "google/gemma-2-9b-it"), ("gemma2-9b", "gemma-2-9b"),
           layers=42, hidden=3584, intermediate=14336, heads=16, kv_heads=8, head_dim=256,
           vocab=256000, tied=True, context=8192),
    _model("gemma2", ("google/gemma-2-27b", "google/gemma-2-27b-it"), ("gemma2-27b", "gemma-2-27b"),
           layers=46, hidden=4608, intermediate=36864, heads=32, kv_heads=16, head_dim=128,
           vocab=256000, tied=True, context=8192),
    # Gemma 3, text part. The 4B/12B/27B checkpoints add a SigLIP vision tower that is not counted here;
    # their text_config pads vocab to 262208 (Gemma3TextConfig default), the text-only 1B keeps 262144.
    _model("gemma3_text", ("google/gemma-3-1b-pt", "google/gemma-3-1b-it"), ("gemma3-1b", "gemma-3-1b"),
           layers=26, hidden=1152, intermediate=6912, heads=4, kv_heads=1, head_dim=256,
           vocab=262144, tied=True, context=32768),
    _model("gemma3_text", ("google/gemma-3-4b-pt", "google/gemma-3-4b-it"), ("gemma3-4b", "gemma-3-4b"),
           layers=34, hidden=2560, intermediate=10240, heads=8, kv_heads=4, head_dim=256,
           vocab=262208, tied=True, context=131072),
    _model("gemma3_text", ("google/gemma-3-12b-pt", "google/gemma-3-12b-it"), ("gemma3-12b", "gemma-3-12b"),
           layers=48, hidden=3840, intermediate=15360, heads=16, kv_heads=8, head_dim=256,
           vocab=262208, tied=True, context=131072),
    _model("gemma3_text", ("google/gemma-3-27b-pt", "google/gemma-3-27b-it"), ("gemma3-27b", "gemma-3-27b"),
           layers=62, hidden=5376, intermediate=21504, heads=32, kv_heads=16, head_dim=128,
           vocab=262208, tied=True, context=131072),
    # Phi-3-mini (3.8B, released as instruct only; the 4k and 128k differ in context and rope scaling) and
    # Phi-4-mini (3.8B, grouped-query attention, 200K vocab, tied). Both use the phi3 modeling code.
    _model("phi3", ("microsoft/Phi-3-mini-4k-instruct",), ("phi3-mini", "phi-3-mini", "phi-3-mini-4k"),
           layers=32, hidden=3072, intermediate=8192, heads=32, kv_heads=32, head_dim=96,
           vocab=32064, tied=False, context=4096),
    _model("phi3", ("microsoft/Phi-3-mini-128k-instruct",), ("phi3-mini-128k", "phi-3-mini-128k"),
           layers=32, hidden=3072, intermediate=8192, heads=32, kv_heads=32, head_dim=96,
           vocab=32064, tied=False, context=131072),
    _model("phi3", ("microsoft/Phi-4-mini-instruct",), ("phi4-mini", "phi-4-mini"),
           layers=32, hidden=3072, intermediate=8192, heads=24, kv_heads=8, head_dim=128,
           vocab=200064, tied=True, context=131072),
    # Mixtures of experts. Mixtral's experts use intermediate_size; Qwen3-30B-A3B's moe_intermediate_size (every
    # block is sparse: decoder_sparse_step 1, no mlp_only_layers); gpt-oss ships its experts in MXFP4.
    _model("mixtral", ("mistralai/Mixtral-8x7B-v0.1", "mistralai/Mixtral-8x7B-Instruct-v0.1"),
           ("mixtral-8x7b",),
           layers=32, hidden=4096, intermediate=14336, heads=32, kv_heads=8, head_dim=128,
           vocab=32000, tied=False, context=32768, experts=8, active_experts=2, expert_intermediate=14336),
    _model("qwen3_moe", ("Qwen/Qwen3-30B-A3B", "Qwen/Qwen3-30B-A3B-Base", "Qwen/Qwen3-30B-A3B-Instruct-2507"),
           ("qwen3-30b-a3b",),
           layers=48, hidden=2048, intermediate=6144, heads=32, kv_heads=4, head_dim=128,
           vocab=151936, tied=False, context=40960, experts=128, active_experts=8, expert_intermediate=768),
    _model("gpt_oss", ("openai/gpt-oss-20b",), ("gpt-oss-20b",),
           layers=24, hidden=2880, intermediate=2880, heads=64, kv_heads=8, head_dim=64,
           vocab=201088, tied=False, context=131072, experts=32, active_experts=4, expert_intermediate=2880,
           qkv_bias=True, output_bias=True, shipped_quantization="mxfp4"),
    # SmolLM2 (Llama architecture, tied embeddings).
    _model("llama", ("HuggingFaceTB/SmolLM2-135M", "HuggingFaceTB/SmolLM2-135M-Instruct"), ("smollm2-135m",),
           layers=30, hidden=576, intermediate=1536, heads=9, kv_heads=3, head_dim=64,
           vocab=49152, tied=True, context=8192),
    _model("llama", ("HuggingFaceTB/SmolLM2-360M", "HuggingFaceTB/SmolLM2-360M-Instruct"), ("smollm2-360m",),
           layers=32, hidden=960, intermediate=2560, heads=15, kv_heads=5, head_dim=64,
           vocab=49152, tied=True, context=8192),
    _model("llama", ("HuggingFaceTB/SmolLM2-1.7B", "HuggingFaceTB/SmolLM2-1.7B-Instruct"), ("smollm2-1.7b",),
           layers=24, hidden=2048, intermediate=8192, heads=32, kv_heads=32, head_dim=64,
           vocab=49152, tied=True, context=8192),
)  # fmt: skip


def _build_index(catalog: tuple[ModelFacts, ...]) -> dict[str, ModelFacts]:
    """Lower-cased hub ids, their repo names without the org, and aliases -> facts; a name used twice is a bug."""
    index: dict[str, ModelFacts] = {}
    for facts in catalog:
        repo_names = tuple(hub_id.split("/", 1)[1] for hub_id in facts.hub_ids)
        for key in (*facts.hub_ids, *repo_names, *facts.aliases):
            if index.setdefault(key.lower(), facts) is not facts:
                raise ValueError(f"catalog name {key!r} is used by two models")
    return index


_INDEX = _build_index(CATALOG)
# Unsloth re-uploads the same checkpoints (sometimes pre-quantized) under its own org.
_UNSLOTH_SUFFIXES = ("-unsloth-bnb-4bit", "-bnb-4bit")


def find_model(name: str) -> ModelFacts | None:
    """The catalog entry for a hub id (any case), a repo name without its org, or an alias; None if unknown.

    Instruct variants resolve to their base facts ("meta-llama/Llama-3.1-8B-Instruct", "llama3.1-8b-instruct"),
    and so do Unsloth's mirrors ("unsloth/Llama-3.2-1B-Instruct-bnb-4bit").
    """
    key = name.strip().strip("/").lower()
    if key.startswith("unsloth/"):
        key = key.removeprefix("unsloth/")
        for suffix in _UNSLOTH_SUFFIXES:
            key = key.removesuffix(suffix)
    facts = _INDEX.get(key)
    if facts is None and "/" not in key:
        for suffix in ("-instruct", "-it"):
            if key.endswith(suffix):
                return _INDEX.get(key.removesuffix(suffix))
    return facts


def catalog_names() -> list[str]:
    """Every alias and hub id of the catalog, sorted: the names "did you mean" suggests from."""
    names = {name for facts in CATALOG for name in (*facts.aliases, *facts.hub_ids)}
    return sorted(names, key=str.lower)


def _text_config(config: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The text model's keys (a multimodal `text_config` wins over the top level) and its model_type."""
    top_type = str(config.get("model_type") or "")
    nested = config.get("text_config")
    if not isinstance(nested, dict):
        return config, top_type
    merged = {**config, **nested}
    return merged, str(nested.get("model_type") or _TEXT_MODEL_TYPES.get(top_type, top_type))


def facts_from_config(config: dict[str, Any], name: str) -> ModelFacts:
    """Facts from a transformers config.json dict, filling what the file leaves to the config class defaults."""
    keys, architecture = _text_config(config)
    defaults = _CONFIG_CLASS_DEFAULTS.get(architecture, {})

    def value(key: str) -> Any:
        found = keys.get(key)
        return defaults.get(key) if found is None else found

    missing = [key for key in _REQUIRED_KEYS if value(key) is None]
    if missing:
        raise LorawizError(
            f'config of "{name}" has no {", ".join(missing)}, so its shapes are unknown.',
            hint="lorawiz reads decoder-only transformers configs (llama, qwen2, qwen3, mistral, gemma2, gemma3, "
            "phi3 and look-alikes).",
        )
    heads = int(value("num_attention_heads"))
    hidden = int(value("hidden_size"))
    tied = value("tie_word_embeddings")
    # Without head_dim or num_key_value_heads, transformers uses hidden/heads and plain multi-head attention.
    traits = {
        "qkv_bias": bool(keys.get("attention_bias")),
        "output_bias": bool(keys.get("attention_bias")),
        "mlp_bias": bool(keys.get("mlp_bias")),
        "qk_norm": False,
        "norms_per_layer": 2,
    }
    traits.update(_ARCHITECTURE_TRAITS.get(architecture, {}))
    experts = int(value("num_local_experts") or value("num_experts") or 0)
    if experts:
        quantization = keys.get("quantization_config")
        traits.update(
            experts=experts, active_experts=int(value("num_experts_per_tok") or 0),
            expert_intermediate=int(value("moe_intermediate_size") or value("intermediate_size")),
            shared_expert_intermediate=int(value("shared_expert_intermediate_size") or 0),
            shipped_quantization=str(quantization.get("quant_method") or "") if isinstance(quantization, dict) else "",
        )
    return ModelFacts(
        name=name,
        architecture=architecture or "unknown",
        layers=int(value("num_hidden_layers")),
        hidden=hidden,
        intermediate=int(value("intermediate_size")),
        heads=heads,
        kv_heads=int(value("num_key_value_heads") or heads),
        head_dim=int(value("head_dim") or hidden // heads),
        vocab=int(value("vocab_size")),
        tied_embeddings=bool(tied) if tied is not None else False,  # PretrainedConfig's default
        context_length=int(value("max_position_embeddings")),
        hub_ids=(name,) if _HUB_ID.match(name) else (),
        **traits,
    )
