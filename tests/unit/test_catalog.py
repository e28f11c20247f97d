"""Architecture facts of base models (lorawiz/catalog.py; read by lorawiz/model_facts.py): sizes, lookup, purity."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import types

import pytest

from lorawiz.catalog import (
    CATALOG,
    ModelFacts,
    catalog_names,
    facts_from_config,
    find_model,
)
from lorawiz.errors import LorawizError
from lorawiz.model_facts import load_model_facts
from tests.conftest import REPO

EXACT = 0.0
CARD_ROUNDING = 0.02  # a model card's "8.2B" is rounded; 2% covers the rounding, not a wrong shape

# Published parameter counts. Exact integers are the Hugging Face Hub's `safetensors.total` for the repo
# (huggingface.co/api/models/<repo>, the "Model size" on the model page); rounded ones are from the model card.
PUBLISHED_SIZES = [
    ("meta-llama/Llama-3.2-1B", 1_235_814_400, EXACT),
    ("meta-llama/Llama-3.2-3B", 3_212_749_824, EXACT),
    ("meta-llama/Llama-3.1-8B", 8_030_261_248, EXACT),
    ("meta-llama/Llama-3.1-70B", 70_553_706_496, EXACT),
    ("meta-llama/Llama-3.3-70B-Instruct", 70_553_706_496, EXACT),
    ("Qwen/Qwen2.5-0.5B-Instruct", 494_032_768, EXACT),
    ("Qwen/Qwen2.5-1.5B-Instruct", 1_543_714_304, EXACT),
    ("Qwen/Qwen2.5-3B-Instruct", 3_085_938_688, EXACT),
    ("Qwen/Qwen2.5-7B-Instruct", 7_615_616_512, EXACT),  # card: "Number of Parameters: 7.61B"
    ("Qwen/Qwen2.5-14B-Instruct", 14.7e9, CARD_ROUNDING),  # card: "14.7B"
    ("Qwen/Qwen2.5-32B-Instruct", 32_763_876_352, EXACT),
    ("Qwen/Qwen2.5-72B-Instruct", 72_706_203_648, EXACT),
    ("Qwen/Qwen3-0.6B", 0.6e9, CARD_ROUNDING),  # card: "0.6B" (the Hub total also counts the stored tied head)
    ("Qwen/Qwen3-1.7B", 1.7e9, CARD_ROUNDING),  # card: "1.7B"
    ("Qwen/Qwen3-4B", 4_022_468_096, EXACT),
    ("Qwen/Qwen3-8B", 8_190_735_360, EXACT),  # card: "Number of Parameters: 8.2B"
    ("Qwen/Qwen3-14B", 14.8e9, CARD_ROUNDING),  # card: "14.8B"
    ("Qwen/Qwen3-32B", 32_762_123_264, EXACT),
    ("mistralai/Mistral-7B-v0.3", 7_248_023_552, EXACT),
    ("google/gemma-2-2b", 2_614_341_888, EXACT),
    ("google/gemma-2-9b", 9_241_705_984, EXACT),
    ("google/gemma-2-27b", 27_227_128_320, EXACT),
    ("google/gemma-3-1b-it", 999_885_952, EXACT),
    ("microsoft/Phi-3-mini-4k-instruct", 3_821_079_552, EXACT),
    ("microsoft/Phi-4-mini-instruct", 3_836_021_760, EXACT),
    ("HuggingFaceTB/SmolLM2-135M-Instruct", 134_515_008, EXACT),
    ("HuggingFaceTB/SmolLM2-360M-Instruct", 361_821_120, EXACT),
    ("HuggingFaceTB/SmolLM2-1.7B-Instruct", 1_711_376_384, EXACT),
    ("mistralai/Mixtral-8x7B-v0.1", 46_702_792_704, EXACT),
    ("Qwen/Qwen3-30B-A3B", 30_532_122_624, EXACT),
    # The Hub's count since huggingface.js stopped counting MXFP4's scale tensors as parameters (it read
    # 21,511,953,984 before); the card says "21B".
    ("openai/gpt-oss-20b", 20_914_757_184, EXACT),
]

# What one token uses, as the model cards give it: Mixtral "12.9B active", Qwen3-30B-A3B "3.3B activated",
# gpt-oss-20b "3.6B active" (which leaves out the input embedding; lorawiz's "active" counts it).
PUBLISHED_ACTIVE = [
    ("mistralai/Mixtral-8x7B-v0.1", 12.9e9, 0),
    ("Qwen/Qwen3-30B-A3B", 3.3e9, 0),
    ("openai/gpt-oss-20b", 3.6e9, 579_133_440),
]

# Every model the catalog promises to know, by a hub id a user would type.
REQUIRED_HUB_IDS = [
    "meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.2-3B", "meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-70B",
    "meta-llama/Llama-3.3-70B-Instruct",
    "Qwen/Qwen2.5-0.5B", "Qwen/Qwen2.5-1.5B", "Qwen/Qwen2.5-3B", "Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-14B",
    "Qwen/Qwen2.5-32B", "Qwen/Qwen2.5-72B",
    "Qwen/Qwen3-0.6B", "Qwen/Qwen3-1.7B", "Qwen/Qwen3-4B", "Qwen/Qwen3-8B", "Qwen/Qwen3-14B", "Qwen/Qwen3-32B",
    "mistralai/Mistral-7B-v0.3",
    "google/gemma-2-2b", "google/gemma-2-9b", "google/gemma-2-27b",
    "google/gemma-3-1b-pt", "google/gemma-3-4b-pt", "google/gemma-3-12b-pt", "google/gemma-3-27b-pt",
    "microsoft/Phi-3-mini-4k-instruct", "microsoft/Phi-3-mini-128k-instruct", "microsoft/Phi-4-mini-instruct",
    "HuggingFaceTB/SmolLM2-135M", "HuggingFaceTB/SmolLM2-360M", "HuggingFaceTB/SmolLM2-1.7B",
    "mistralai/Mixtral-8x7B-v0.1", "Qwen/Qwen3-30B-A3B", "openai/gpt-oss-20b",
]  # fmt: skip

# Architecture keys of real config.json files, copied from the hub repos named in each key.
REAL_CONFIGS = {
    "Qwen/Qwen2.5-7B": {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 3584,
        "intermediate_size": 18944, "max_position_embeddings": 131072, "num_attention_heads": 28,
        "num_hidden_layers": 28, "num_key_value_heads": 4, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
        "sliding_window": 131072, "tie_word_embeddings": False, "use_sliding_window": False, "vocab_size": 152064,
    },
    "Qwen/Qwen3-4B": {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "attention_bias": False, "head_dim": 128,
        "hidden_size": 2560, "intermediate_size": 9728, "max_position_embeddings": 40960,
        "num_attention_heads": 32, "num_hidden_layers": 36, "num_key_value_heads": 8, "rope_theta": 1000000,
        "tie_word_embeddings": True, "vocab_size": 151936,
    },
    "meta-llama/Llama-3.2-1B": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": False, "head_dim": 64,
        "hidden_size": 2048, "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": False,
        "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
        "tie_word_embeddings": True, "vocab_size": 128256,
    },
    # No tie_word_embeddings key: Gemma2Config's default (True) applies.
    "google/gemma-2-9b": {
        "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "attention_bias": False, "head_dim": 256,
        "hidden_size": 3584, "intermediate_size": 14336, "max_position_embeddings": 8192,
        "num_attention_heads": 16, "num_hidden_layers": 42, "num_key_value_heads": 8,
        "query_pre_attn_scalar": 256, "sliding_window": 4096, "vocab_size": 256000,
    },
    # No head_dim key: 3072 / 32 = 96.
    "microsoft/Phi-3-mini-4k-instruct": {
        "architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "hidden_size": 3072,
        "intermediate_size": 8192, "max_position_embeddings": 4096, "num_attention_heads": 32,
        "num_hidden_layers": 32, "num_key_value_heads": 32, "original_max_position_embeddings": 4096,
        "tie_word_embeddings": False, "vocab_size": 32064,
    },
    # Mixtures of experts. Mixtral has no head_dim key (4096 / 32 = 128) and sizes its experts by
    # intermediate_size; Qwen3-30B-A3B by moe_intermediate_size.
    "mistralai/Mixtral-8x7B-v0.1": {
        "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 4096,
        "intermediate_size": 14336, "max_position_embeddings": 32768, "num_attention_heads": 32,
        "num_experts_per_tok": 2, "num_hidden_layers": 32, "num_key_value_heads": 8, "num_local_experts": 8,
        "rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.02, "sliding_window": None,
        "tie_word_embeddings": False, "vocab_size": 32000,
    },
    "Qwen/Qwen3-30B-A3B": {
        "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "attention_bias": False,
        "decoder_sparse_step": 1, "head_dim": 128, "hidden_size": 2048, "intermediate_size": 6144,
        "max_position_embeddings": 40960, "mlp_only_layers": [], "moe_intermediate_size": 768,
        "norm_topk_prob": True, "num_attention_heads": 32, "num_experts": 128, "num_experts_per_tok": 8,
        "num_hidden_layers": 48, "num_key_value_heads": 4, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
        "router_aux_loss_coef": 0.001, "tie_word_embeddings": False, "vocab_size": 151936,
    },
    "openai/gpt-oss-20b": {
        "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "attention_bias": True, "head_dim": 64,
        "hidden_size": 2880, "intermediate_size": 2880, "layer_types": ["sliding_attention", "full_attention"] * 12,
        "max_position_embeddings": 131072, "num_attention_heads": 64, "num_experts_per_tok": 4,
        "num_hidden_layers": 24, "num_key_value_heads": 8, "num_local_experts": 32, "rms_norm_eps": 1e-05,
        "rope_theta": 150000, "sliding_window": 128, "swiglu_limit": 7.0, "tie_word_embeddings": False,
        "vocab_size": 201088,
        "quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": [
            "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]},
    },
}  # fmt: skip

# google/gemma-3-27b-it config.json: its text_config leaves vocab_size, max_position_embeddings and
# tie_word_embeddings to Gemma3TextConfig's defaults.
GEMMA3_27B_CONFIG = {
    "architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3", "boi_token_index": 255999,
    "eoi_token_index": 256000, "image_token_index": 262144, "mm_tokens_per_image": 256,
    "text_config": {
        "head_dim": 128, "hidden_size": 5376, "intermediate_size": 21504, "model_type": "gemma3_text",
        "num_attention_heads": 32, "num_hidden_layers": 62, "num_key_value_heads": 16,
        "query_pre_attn_scalar": 168, "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024,
    },
    "vision_config": {
        "hidden_size": 1152, "image_size": 896, "intermediate_size": 4304, "model_type": "siglip_vision_model",
        "num_attention_heads": 16, "num_hidden_layers": 27, "patch_size": 14, "vision_use_head": False,
    },
}  # fmt: skip


def architecture_of(facts: ModelFacts) -> dict:
    """Every field but the names, so facts read from a file compare equal to the catalog's."""
    fields = dataclasses.asdict(facts)
    for naming in ("name", "aliases", "hub_ids", "counted"):
        fields.pop(naming)
    return fields


def config_json_of(facts: ModelFacts) -> dict:
    """A config.json as transformers writes it for these facts."""
    return {
        "model_type": facts.architecture,
        "hidden_size": facts.hidden,
        "intermediate_size": facts.intermediate,
        "num_hidden_layers": facts.layers,
        "num_attention_heads": facts.heads,
        "num_key_value_heads": facts.kv_heads,
        "head_dim": facts.head_dim,
        "vocab_size": facts.vocab,
        "tie_word_embeddings": facts.tied_embeddings,
        "max_position_embeddings": facts.context_length,
        "attention_bias": facts.output_bias,
        "mlp_bias": facts.mlp_bias,
        **moe_keys_of(facts),
    }


def moe_keys_of(facts: ModelFacts) -> dict:
    """The mixture-of-experts keys of a config.json, named as each architecture's config class names them."""
    if not facts.is_moe:
        return {}
    keys = {"num_experts_per_tok": facts.active_experts}
    if facts.architecture in ("mixtral", "gpt_oss"):
        keys["num_local_experts"] = facts.experts  # experts as wide as intermediate_size
    else:
        keys.update(num_experts=facts.experts, moe_intermediate_size=facts.expert_intermediate)
    if facts.shared_expert_intermediate:
        keys["shared_expert_intermediate_size"] = facts.shared_expert_intermediate
    if facts.shipped_quantization:
        keys["quantization_config"] = {"quant_method": facts.shipped_quantization}
    return keys


@pytest.fixture
def offline_hub(monkeypatch):
    """A huggingface_hub whose download fails at once, as it does with no network; records the calls."""
    calls: list[tuple[str, str]] = []

    def hf_hub_download(repo_id: str, filename: str, **kwargs):
        calls.append((repo_id, filename))
        raise OSError("Network is unreachable")

    import huggingface_hub  # the real package (transformers needs it), with its download replaced

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    return calls


# ---------------------------------------------------------------------------------------------------------
# Parameter counts and shapes


@pytest.mark.parametrize(("hub_id", "published", "tolerance"), PUBLISHED_SIZES)
def test_parameter_total_matches_the_published_size(hub_id, published, tolerance):
    facts = find_model(hub_id)
    assert facts is not None, hub_id
    assert facts.parameters()["total"] == pytest.approx(published, rel=tolerance, abs=0)


def test_breakdown_adds_up_and_a_tied_head_counts_zero():
    untied = find_model("llama3.1-8b").parameters()
    assert untied["lm_head"] == untied["embeddings"] == 128256 * 4096
    assert untied["total"] == untied["embeddings"] + untied["layers"] + untied["lm_head"]
    tied = find_model("llama3.2-1b").parameters()
    assert tied["lm_head"] == 0
    assert tied["total"] == tied["embeddings"] + tied["layers"]


@pytest.mark.parametrize(("hub_id", "published", "left_out"), PUBLISHED_ACTIVE)
def test_active_parameters_of_a_mixture_of_experts_match_the_card(hub_id, published, left_out):
    counts = find_model(hub_id).parameters()
    assert counts["active"] - left_out == pytest.approx(published, rel=CARD_ROUNDING)
    assert counts["experts"] > 0.9 * counts["layers"]  # nearly all of a sparse model is experts


def test_experts_and_router_are_not_lora_targets_but_a_shared_expert_is():
    mixtral = find_model("mixtral-8x7b")
    assert list(mixtral.linear_shapes()) == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert mixtral.expert_parameters() == 8 * 3 * 4096 * 14336
    assert mixtral.router_parameters() == 8 * 4096
    shared = dataclasses.replace(mixtral, name="shared", shared_expert_intermediate=1024)
    assert shared.linear_shapes()["gate_proj"] == (4096, 1024)
    assert shared.linear_shapes()["shared_expert_gate"] == (4096, 1)
    dense = find_model("llama3.1-8b")
    assert (dense.parameters()["experts"], dense.parameters()["active"]) == (0, dense.parameters()["total"])


def test_gpt_oss_reports_its_shipped_mxfp4_weights():
    facts = facts_from_config(REAL_CONFIGS["openai/gpt-oss-20b"], "openai/gpt-oss-20b")
    assert facts.shipped_quantization == "mxfp4"
    assert (facts.experts, facts.active_experts, facts.expert_intermediate) == (32, 4, 2880)


def test_an_unknown_config_is_counted_on_the_meta_device(tmp_path, offline_hub):
    # Qwen2-MoE's layout (a shared expert with its gate, biased q/k/v) is in no catalog entry; the meta-device
    # count is exact, and the formula agrees with it.
    config = {"model_type": "qwen2_moe", "hidden_size": 256, "intermediate_size": 512, "moe_intermediate_size": 64,
              "shared_expert_intermediate_size": 128, "num_experts": 6, "num_experts_per_tok": 2,
              "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000,
              "max_position_embeddings": 2048, "tie_word_embeddings": False}
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = load_model_facts(str(tmp_path))
    from transformers import AutoConfig, AutoModelForCausalLM

    values = dict(config)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(values.pop("model_type"), **values))
    assert loaded.parameters()["total"] == sum(p.numel() for p in model.parameters())
    assert loaded.parameters() == dataclasses.replace(loaded, counted=()).parameters()
    experts = sum(p.numel() for name, p in model.named_parameters() if ".experts." in name)
    assert loaded.parameters()["experts"] == experts


def test_a_config_transformers_cannot_build_keeps_the_formula(tmp_path, offline_hub):
    config = config_json_of(find_model("llama3.2-1b")) | {"model_type": "not-a-transformers-model"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = load_model_facts(str(tmp_path))
    assert loaded.counted == ()
    assert loaded.parameters() == find_model("llama3.2-1b").parameters()


def test_qwen3_small_checkpoints_store_their_tied_head():
    # The Hub counts lm_head.weight in Qwen3-0.6B and -1.7B safetensors (751,632,384 and 2,031,739,904)
    # although the model ties it to the embeddings; the model itself holds one copy.
    for alias, hub_total in (("qwen3-0.6b", 751_632_384), ("qwen3-1.7b", 2_031_739_904)):
        facts = find_model(alias)
        assert facts.tied_embeddings
        assert facts.parameters()["total"] == hub_total - facts.vocab * facts.hidden


def test_gemma3_text_counts_leave_the_same_vision_tower_at_every_size():
    # The Hub totals of google/gemma-3-{4b,12b,27b}-it include one SigLIP tower (identical at every size) and a
    # projector of vision_hidden (1152) x text hidden. What remains after the text model must be that tower:
    # a wrong vocab or norm count would leave a remainder that changes with the size.
    hub_totals = {"gemma3-4b": 4_300_079_472, "gemma3-12b": 12_187_325_040, "gemma3-27b": 27_432_406_640}
    towers = set()
    for alias, hub_total in hub_totals.items():
        facts = find_model(alias)
        towers.add(hub_total - facts.parameters()["total"] - 1152 * facts.hidden)
    assert len(towers) == 1
    assert 0.4e9 < towers.pop() < 0.45e9  # SigLIP So400m at 896 px: about 0.42B


def test_linear_shapes_use_head_dim_not_hidden_over_heads():
    shapes = find_model("Qwen/Qwen3-4B").linear_shapes()
    assert list(shapes) == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert shapes["q_proj"] == (2560, 32 * 128)  # 4096 wide, not 2560
    assert shapes["k_proj"] == shapes["v_proj"] == (2560, 8 * 128)
    assert shapes["o_proj"] == (4096, 2560)
    assert shapes["down_proj"] == (9728, 2560)


def test_phi3_reports_its_fused_projections():
    assert find_model("phi3-mini").linear_shapes() == {
        "qkv_proj": (3072, 3 * 3072),
        "o_proj": (3072, 3072),
        "gate_up_proj": (3072, 2 * 8192),
        "down_proj": (8192, 3072),
    }
    assert find_model("phi4-mini").linear_shapes()["qkv_proj"] == (3072, (24 + 2 * 8) * 128)


# ---------------------------------------------------------------------------------------------------------
# Lookup


@pytest.mark.parametrize("hub_id", REQUIRED_HUB_IDS)
def test_catalog_covers_the_promised_models(hub_id):
    facts = find_model(hub_id)
    assert facts is not None and hub_id in facts.hub_ids


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B"),
        ("META-LLAMA/llama-3.1-8b", "meta-llama/Llama-3.1-8B"),
        ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B"),
        ("meta-llama/Meta-Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B"),
        ("llama3.1-8b", "meta-llama/Llama-3.1-8B"),
        ("llama-3.1-8b-instruct", "meta-llama/Llama-3.1-8B"),
        ("Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-1B"),
        ("unsloth/Llama-3.2-1B-Instruct-bnb-4bit", "meta-llama/Llama-3.2-1B"),
        ("unsloth/mistral-7b-instruct-v0.3", "mistralai/Mistral-7B-v0.3"),
        ("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B"),
        ("Qwen/Qwen3-8B-Base", "Qwen/Qwen3-8B"),
        ("google/gemma-3-12b-it", "google/gemma-3-12b-pt"),
        ("gemma-2-9b-it", "google/gemma-2-9b"),
        ("  qwen3-0.6b  ", "Qwen/Qwen3-0.6B"),
    ],
)
def test_find_model_by_hub_id_alias_or_instruct_variant(name, expected):
    facts = find_model(name)
    assert facts is not None, name
    assert facts.name == expected


@pytest.mark.parametrize("name", ["llama3.1-9b", "someone/Llama-3.1-8B-finetune", "", "unsloth/unknown-model"])
def test_find_model_returns_none_for_unknown_names(name):
    assert find_model(name) is None


def test_catalog_names_resolve_and_are_sorted():
    names = catalog_names()
    assert names == sorted(names, key=str.lower)
    assert {"llama3.1-8b", "qwen2.5-7b", "meta-llama/Llama-3.1-8B-Instruct", "phi4-mini"} <= set(names)
    assert all(find_model(name) is not None for name in names)
    assert len(names) == len({name.lower() for name in names})


# ---------------------------------------------------------------------------------------------------------
# Reading config.json


@pytest.mark.parametrize("facts", CATALOG, ids=lambda facts: facts.name)
def test_config_json_in_a_folder_round_trips_the_catalog_entry(tmp_path, facts, offline_hub):
    (tmp_path / "config.json").write_text(json.dumps(config_json_of(facts)))
    loaded = load_model_facts(str(tmp_path))
    assert architecture_of(loaded) == architecture_of(facts)
    assert loaded.counted, "transformers could not build the config on the meta device"
    assert loaded.parameters() == facts.parameters()  # the meta-device count against the catalog's formula
    assert loaded.name == str(tmp_path)
    assert offline_hub == []


@pytest.mark.parametrize("hub_id", list(REAL_CONFIGS))
def test_real_config_json_gives_the_catalog_facts(hub_id):
    assert architecture_of(facts_from_config(REAL_CONFIGS[hub_id], hub_id)) == architecture_of(find_model(hub_id))


def test_nested_text_config_with_class_defaults():
    facts = facts_from_config(GEMMA3_27B_CONFIG, "google/gemma-3-27b-it")
    assert facts.architecture == "gemma3_text"
    assert (facts.vocab, facts.context_length, facts.tied_embeddings) == (262208, 131072, True)
    assert architecture_of(facts) == architecture_of(find_model("gemma3-27b"))
    assert facts.hub_ids == ("google/gemma-3-27b-it",)


def test_text_config_values_win_over_the_top_level():
    config = {
        "model_type": "llava",
        "vocab_size": 99,  # a wrapper-level value that must not leak into the text model
        "text_config": {**config_json_of(find_model("llama3.2-1b")), "model_type": "llama"},
    }
    facts = facts_from_config(config, "someone/llava-llama")
    assert facts.vocab == 128256 and facts.architecture == "llama"


def test_missing_head_dim_and_kv_heads_fall_back_like_transformers():
    config = {
        "model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
        "num_attention_heads": 32, "vocab_size": 32000, "max_position_embeddings": 4096,
    }  # fmt: skip
    facts = facts_from_config(config, "meta-llama/Llama-2-7b-hf")
    assert (facts.head_dim, facts.kv_heads, facts.tied_embeddings) == (128, 32, False)
    assert facts.parameters()["total"] == 6_738_415_616  # Llama 2 7B: "all params: 6738415616" (PEFT)
    # Gemma 2 configs omit tie_word_embeddings; Gemma2Config ties by default.
    gemma = {key: value for key, value in REAL_CONFIGS["google/gemma-2-9b"].items() if key != "head_dim"}
    assert facts_from_config(gemma, "google/gemma-2-9b").tied_embeddings is True
    # Qwen3Config defaults head_dim to 128 rather than hidden / heads.
    qwen3 = {key: value for key, value in REAL_CONFIGS["Qwen/Qwen3-4B"].items() if key != "head_dim"}
    assert facts_from_config(qwen3, "Qwen/Qwen3-4B").head_dim == 128


def test_config_without_shapes_is_a_clear_error():
    with pytest.raises(LorawizError) as caught:
        facts_from_config({"model_type": "llama", "hidden_size": 64}, "someone/broken")
    assert "someone/broken" in caught.value.message
    assert "num_hidden_layers" in caught.value.message and "vocab_size" in caught.value.message


# ---------------------------------------------------------------------------------------------------------
# load_model_facts: catalog, local folder, Hub


def test_catalog_names_never_reach_the_hub(offline_hub):
    assert load_model_facts("Qwen/Qwen2.5-7B-Instruct").name == "Qwen/Qwen2.5-7B"
    assert offline_hub == []


def test_path_to_a_config_json_file(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(REAL_CONFIGS["meta-llama/Llama-3.2-1B"]))
    facts = load_model_facts(str(tmp_path / "config.json"))
    assert architecture_of(facts) == architecture_of(find_model("llama3.2-1b"))
    assert facts.name == str(tmp_path)


def test_unknown_hub_id_offline_is_one_error_with_a_hint(offline_hub):
    with pytest.raises(LorawizError) as caught:
        load_model_facts("someone/not-a-cataloged-model")
    error = caught.value
    assert offline_hub == [("someone/not-a-cataloged-model", "config.json")]
    assert "someone/not-a-cataloged-model" in error.message and "\n" not in error.message
    assert "local model folder" in error.hint


def test_hub_config_is_read_when_the_hub_answers(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text(json.dumps(REAL_CONFIGS["Qwen/Qwen3-4B"]))
    module = types.ModuleType("huggingface_hub")
    module.hf_hub_download = lambda repo_id, filename, **kwargs: str(tmp_path / filename)
    monkeypatch.setitem(sys.modules, "huggingface_hub", module)
    facts = load_model_facts("someone/qwen3-4b-finetune")
    assert facts.name == "someone/qwen3-4b-finetune" and facts.hub_ids == ("someone/qwen3-4b-finetune",)
    assert architecture_of(facts) == architecture_of(find_model("qwen3-4b"))


def test_missing_local_path_has_its_own_message(tmp_path, offline_hub):
    missing = tmp_path / "models" / "llama"
    with pytest.raises(LorawizError) as caught:
        load_model_facts(str(missing))
    assert "does not exist" in caught.value.message and str(missing) in caught.value.message
    with pytest.raises(LorawizError, match="does not exist"):
        load_model_facts("./checkpoints/run-3/final")
    assert offline_hub == []


def test_folder_without_config_json(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(LorawizError, match="has no config.json"):
        load_model_facts(str(tmp_path))


def test_broken_config_json_names_the_file_and_line(tmp_path):
    (tmp_path / "config.json").write_text('{\n  "hidden_size": 64,\n  oops\n}')
    with pytest.raises(LorawizError) as caught:
        load_model_facts(str(tmp_path))
    assert "config.json line 3" in caught.value.message


def test_empty_name_is_not_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(REAL_CONFIGS["meta-llama/Llama-3.2-1B"]))
    with pytest.raises(LorawizError, match="no model given"):
        load_model_facts("  ")


def test_unknown_short_name_suggests_a_catalog_name(offline_hub):
    with pytest.raises(LorawizError) as caught:
        load_model_facts("lama3.1-8b")
    assert '"lama3.1-8b"' in caught.value.message
    assert 'Did you mean "llama3.1-8b"?' in caught.value.hint
    assert offline_hub == []


# ---------------------------------------------------------------------------------------------------------
# Purity


def test_import_loads_no_heavy_packages():
    code = (
        "import sys, lorawiz.catalog as catalog\n"
        "catalog.find_model('llama3.1-8b').parameters()\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'huggingface_hub') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_a_meta_device_count_is_made_once_per_config(tmp_path, monkeypatch, offline_hub):
    import lorawiz.model_facts as model_facts

    monkeypatch.setenv("LORAWIZ_CACHE", str(tmp_path / "cache"))
    calls = []
    real = model_facts._count_on_meta
    monkeypatch.setattr(model_facts, "_count_on_meta", lambda *args: calls.append(1) or real(*args))
    (tmp_path / "config.json").write_text(json.dumps(config_json_of(find_model("smollm2-135m"))))
    first, second = load_model_facts(str(tmp_path)), load_model_facts(str(tmp_path))
    assert calls == [1] and first.counted == second.counted and first.counted
    assert second.parameters() == find_model("smollm2-135m").parameters()
