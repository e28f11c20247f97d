"""The recommender (lorawiz/recommend.py), table-driven: hardware x model x preset -> invariants."""

from __future__ import annotations

import pytest

from lorawiz.catalog import find_model
from lorawiz.config.layers import Source
from lorawiz.hardware import parse_hardware_spec
from lorawiz.memory import GIB
from lorawiz.presets import load_preset
from lorawiz.recommend import MEMORY_BUDGET, Choice, DataFacts, recommend

HARDWARE = ["cpu", "laptop-8gb", "t4", "rtx4090", "a100-40gb", "a100-80gb", "h100-80gb", "4xa100-80gb"]
MODELS = ["meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.1-8B", "Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-14B"]
PRESETS = ["quick", "standard", "production", "memory", "time"]
DATA = DataFacts(rows=20_000, mean_tokens=300, p95=700, p99=1000, max_tokens=3000, suggested_max_seq_length=1024)


def preset_values(name: str) -> dict[str, Choice]:
    """The preset's values as the recommender receives them (lorawiz.planning.given_choices)."""
    layer = load_preset(name)
    return {key: Choice(value, f"set by the preset {name}", layer.sources[key]) for key, value in layer.values.items()}


def user(**values) -> dict[str, Choice]:
    return {key: Choice(value, "your value", Source("flag", f"flag --{key}")) for key, value in values.items()}


# Every case of the grid must fit except these, which are over the budget even in 4 bits at micro-batch 1: 7-14B
# models on an 8 GB laptop (in 4 bits the 7-8B ones miss 7.2 GiB by a few hundred MiB, and fit with the quick
# preset's shorter runs or, for Qwen2.5-7B, the memory preset), and the time preset's Qwen2.5-14B without gradient
# checkpointing on a T4.
LAPTOP_MISSES = {("laptop-8gb", m) for m in ("meta-llama/Llama-3.1-8B", "Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-14B")}
EXPECTED_NOT_TO_FIT = {
    "quick": {("laptop-8gb", "Qwen/Qwen2.5-14B")},
    "standard": LAPTOP_MISSES,
    "production": LAPTOP_MISSES,
    "memory": LAPTOP_MISSES - {("laptop-8gb", "Qwen/Qwen2.5-7B")},
    "time": LAPTOP_MISSES | {("t4", "Qwen/Qwen2.5-14B")},
}


@pytest.mark.parametrize("hardware", HARDWARE)
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("preset", PRESETS)
def test_plans_fit_and_batch_is_in_range(hardware, model, preset):
    profile = parse_hardware_spec(hardware)
    plan = recommend(profile, find_model(model), DATA, given=preset_values(preset))
    assert plan.fits == ((hardware, model) not in EXPECTED_NOT_TO_FIT[preset]), (plan.memory.total / GIB,
                                                                                plan.warnings)
    if profile.is_cpu_only:  # a CPU spec for another machine: RAM unknown, so the fit cannot be judged
        assert plan.fits and any("RAM is unknown" in w for w in plan.warnings)
        assert plan.value("bf16") is False
        assert plan.value("load_in_4bit") is False or plan.values["load_in_4bit"].source.kind == "preset"
    elif plan.fits:
        assert plan.memory.total <= MEMORY_BUDGET * profile.smallest_gpu_free_bytes
    else:
        assert plan.alternative and plan.warnings
    effective = (plan.value("per_device_train_batch_size") * plan.value("gradient_accumulation_steps")
                 * max(1, profile.gpu_count))
    assert 16 <= effective <= 64
    assert plan.value("lora_alpha") == 2 * plan.value("lora_r") or not plan.values["lora_alpha"].by_recommender
    for name, choice in plan.values.items():
        assert choice.reason, name


def test_8b_on_16gb_uses_4bit_and_1b_on_h100_uses_16bit():
    t4 = recommend(parse_hardware_spec("t4"), find_model("meta-llama/Llama-3.1-8B"), DATA)
    assert t4.value("load_in_4bit") is True and t4.fits
    assert t4.value("fp16") is True and t4.value("bf16") is False  # T4 has no bf16
    h100 = recommend(parse_hardware_spec("h100-80gb"), find_model("meta-llama/Llama-3.2-1B"), DATA)
    assert h100.value("load_in_4bit") is False and h100.value("bf16") is True
    assert h100.value("gradient_checkpointing") is False  # only when needed to fit


def test_70b_on_one_24gb_gpu_is_refused_with_an_alternative():
    plan = recommend(parse_hardware_spec("rtx4090"), find_model("meta-llama/Llama-3.1-70B"), DATA)
    assert not plan.fits
    assert "GPU with at least" in plan.alternative and "smaller model" in plan.alternative


def test_cpu_plan():
    plan = recommend(parse_hardware_spec("cpu"), find_model("HuggingFaceTB/SmolLM2-135M"), DATA)
    assert plan.value("bf16") is False and plan.value("fp16") is False
    assert plan.value("optim") == "adamw_torch" and plan.value("load_in_4bit") is False


def test_user_values_win_and_the_fit_is_rechecked():
    plan = recommend(parse_hardware_spec("t4"), find_model("meta-llama/Llama-3.1-8B"), DATA,
                     given=user(per_device_train_batch_size=64, load_in_4bit=False))
    assert plan.value("per_device_train_batch_size") == 64
    assert plan.values["per_device_train_batch_size"].source.kind == "flag"
    assert not plan.fits and plan.warnings and "4 bits" in plan.alternative


@pytest.mark.parametrize(("steps_rows", "ratio"), [(5_000, 0.1), (100_000, 0.06), (2_000_000, 0.03)])
def test_warmup_by_total_steps(steps_rows, ratio):
    data = DataFacts(rows=steps_rows, mean_tokens=100, p95=200, p99=300, max_tokens=400,
                     suggested_max_seq_length=320)
    plan = recommend(parse_hardware_spec("h100-80gb"), find_model("meta-llama/Llama-3.2-1B"), data)
    assert plan.value("warmup_ratio") == ratio


def test_eval_steps_give_5_to_10_evaluations_an_epoch():
    plan = recommend(parse_hardware_spec("a100-80gb"), find_model("Qwen/Qwen2.5-7B"), DATA)
    effective = plan.value("per_device_train_batch_size") * plan.value("gradient_accumulation_steps")
    per_epoch = -(-DATA.rows // effective)
    assert 5 <= per_epoch / plan.value("eval_steps") <= 10
    assert plan.value("save_steps") == plan.value("eval_steps")


def test_time_estimate_is_labelled():
    plan = recommend(parse_hardware_spec("h100-80gb"), find_model("meta-llama/Llama-3.1-8B"), DATA)
    assert plan.time.seconds > 0 and plan.time.assumption.startswith("estimate")
    assert plan.memory.total / GIB < 80


@pytest.mark.parametrize("hardware", ["cpu", "t4", "h100-80gb"])
def test_defaults_batch_rows_of_similar_length(hardware):
    """What made the difference in bench/train_speed.py (3.5x the padded baseline on CPU) is on by default."""
    plan = recommend(parse_hardware_spec(hardware), find_model("meta-llama/Llama-3.2-1B"), DATA)
    assert plan.value("packing") is False and plan.value("group_by_length") is True
    assert "padding" in plan.values["group_by_length"].reason
    packed = recommend(parse_hardware_spec(hardware), find_model("meta-llama/Llama-3.2-1B"), DATA,
                       given=preset_values("time"))
    assert packed.value("packing") is True and packed.value("group_by_length") is False


def test_max_steps_caps_the_steps_and_the_time():
    big = DataFacts(rows=200_000, mean_tokens=300, p95=700, p99=1000, max_tokens=3000, suggested_max_seq_length=1024)
    model, hw = find_model("meta-llama/Llama-3.2-1B"), parse_hardware_spec("h100-80gb")
    free = recommend(hw, model, big)
    capped = recommend(hw, model, big, given=preset_values("quick"), settings={"max_steps": 200})
    assert free.steps > 200 and capped.steps == 200 and capped.time.steps == 200
    assert capped.time.seconds < free.time.seconds
    assert any("max_steps 200 ends the run first" in note for note in capped.notes)
    small = recommend(hw, model, DataFacts(rows=300, mean_tokens=100, p95=200, p99=300, max_tokens=400,
                                           suggested_max_seq_length=320), settings={"max_steps": 200})
    assert small.steps < 200 and any("is not reached" in note for note in small.notes)


def test_a_users_warmup_steps_is_what_the_plan_shows():
    plan = recommend(parse_hardware_spec("t4"), find_model("meta-llama/Llama-3.2-1B"), DATA,
                     given=user(warmup_steps=50))
    assert plan.value("warmup_steps") == 50 and "warmup_ratio" not in plan.values


@pytest.mark.parametrize(("given", "bf16", "fp16"), [({"fp16": True}, False, True), ({"bf16": True}, True, False),
                                                     ({"bf16": False}, False, False)])
def test_a_users_precision_turns_the_other_off(given, bf16, fp16):
    plan = recommend(parse_hardware_spec("a100-80gb"), find_model("meta-llama/Llama-3.2-1B"), DATA, given=user(**given))
    assert (plan.value("bf16"), plan.value("fp16")) == (bf16, fp16)


def test_a_users_save_steps_gets_an_evaluation_schedule_that_divides_it():
    plan = recommend(parse_hardware_spec("a100-80gb"), find_model("meta-llama/Llama-3.2-1B"), DATA,
                     given=user(save_steps=50))
    assert plan.value("save_steps") == 50 and 50 % plan.value("eval_steps") == 0
    assert "divisor of save_steps 50" in plan.values["eval_steps"].reason


def test_held_out_rows_are_not_counted_as_training_rows():
    plan = recommend(parse_hardware_spec("a100-80gb"), find_model("meta-llama/Llama-3.2-1B"), DATA)
    assert plan.train_rows == DATA.rows - DATA.rows // 10
    with_val = recommend(parse_hardware_spec("a100-80gb"), find_model("meta-llama/Llama-3.2-1B"), DATA,
                         settings={"validation_file": "val.jsonl"})
    assert with_val.train_rows == DATA.rows


def test_dpo_takes_its_own_rate_beta_and_epochs_and_plans_two_sequences_a_pair():
    from lorawiz.memory import TrainingShape, estimate_memory, loss_bytes

    hardware, model = parse_hardware_spec("a100-80gb"), find_model("meta-llama/Llama-3.1-8B")
    sft = recommend(hardware, model, DATA)
    dpo = recommend(hardware, model, DATA, settings={"method": "dpo"})
    assert (dpo.value("learning_rate"), dpo.value("beta"), dpo.value("num_train_epochs")) == (5e-5, 0.1, 1.0)
    assert dpo.value("lora_dropout") == 0.0 and "beta" not in sft.values
    assert "DPO" in dpo.values["learning_rate"].reason
    # a pair puts its chosen and its rejected answer through the model at once: the micro-batch that fits halves
    assert dpo.value("per_device_train_batch_size") < sft.value("per_device_train_batch_size")
    shape = TrainingShape(micro_batch=2, seq_len=1024)
    pair = TrainingShape(micro_batch=2, seq_len=1024, sequences=2, loss="preference")
    one, two = estimate_memory(model, shape), estimate_memory(model, pair)
    assert two["activations"] == 2 * one["activations"]
    # whole logits of policy and reference, not TRL's 256-token chunks
    assert loss_bytes(model, pair)[0] > 2 * loss_bytes(model, shape)[0]
    assert two.total > one.total


def test_a_users_dpo_rate_wins():
    plan = recommend(parse_hardware_spec("a100-80gb"), find_model("meta-llama/Llama-3.1-8B"), DATA,
                     given=user(learning_rate=1e-6), settings={"method": "dpo"})
    assert plan.value("learning_rate") == 1e-6 and plan.values["learning_rate"].source.kind == "flag"
