"""What a plan that does not fit is told to change (lorawiz/fitting.py): the cheapest change that fits, re-estimated."""

from __future__ import annotations

import re

import pytest

from lorawiz.catalog import find_model
from lorawiz.fitting import cheapest_fix, fix_ladder
from lorawiz.hardware import parse_hardware_spec
from lorawiz.memory import GIB, TrainingShape, estimate_memory
from lorawiz.recommend import recommend
from tests.unit.test_recommend import DATA, user

HEAVY = TrainingShape(quantization="none", micro_batch=4, seq_len=2048, gradient_checkpointing=False)


def test_the_ladder_goes_from_the_cheapest_change_to_the_dearest():
    steps = [dict(changes) for _, changes in fix_ladder(HEAVY)]
    assert steps == [
        {"gradient_checkpointing": True},
        {"gradient_checkpointing": True, "per_device_train_batch_size": 2},
        {"gradient_checkpointing": True, "per_device_train_batch_size": 1},
        {"gradient_checkpointing": True, "per_device_train_batch_size": 1, "max_seq_length": 1024},
        {"gradient_checkpointing": True, "per_device_train_batch_size": 1, "load_in_4bit": True},
        {"gradient_checkpointing": True, "per_device_train_batch_size": 1, "load_in_4bit": True,
         "max_seq_length": 1024},
        {"gradient_checkpointing": True, "per_device_train_batch_size": 1, "load_in_4bit": True,
         "max_seq_length": 512},
        {"gradient_checkpointing": True, "per_device_train_batch_size": 1, "load_in_4bit": True,
         "max_seq_length": 256},
    ]
    shapes = [shape for shape, _ in fix_ladder(HEAVY)]
    assert shapes[4].seq_len == 2048 and shapes[4].quantization == "nf4-dq"  # 4 bits at the planned length first


def test_nothing_already_in_place_is_offered_again():
    lean = TrainingShape(quantization="nf4-dq", micro_batch=1, seq_len=512, gradient_checkpointing=True)
    assert [dict(changes) for _, changes in fix_ladder(lean)] == [{"max_seq_length": 256}]


@pytest.mark.parametrize("model", ["meta-llama/Llama-3.1-8B", "Qwen/Qwen2.5-7B", "mistralai/Mixtral-8x7B-v0.1"])
def test_the_first_change_that_fits_is_offered_with_its_estimate(model):
    facts = find_model(model)
    ladder = fix_ladder(HEAVY)
    needs = [estimate_memory(facts, shape).total for shape, _ in ladder]
    for budget in sorted(needs):
        first = next(i for i, need in enumerate(needs) if need <= budget)
        offered = cheapest_fix(facts, HEAVY, budget)
        for setting, value in ladder[first][1]:
            assert f"--set {setting}={str(value).lower()}" in offered
        assert offered.count("--set") == len(ladder[first][1])
        assert f"{needs[first] / GIB:.1f} GiB of {budget / GIB:.1f} GiB usable" in offered
    assert cheapest_fix(facts, HEAVY, min(needs) * 0.99).startswith("a GPU with at least")


def test_gradient_checkpointing_alone_is_offered_when_it_is_enough():
    # A T4 run with checkpointing and 4 bits turned off: checkpointing alone fits, so 4 bits is not suggested.
    plan = recommend(parse_hardware_spec("t4"), find_model("meta-llama/Llama-3.2-1B"), DATA,
                     given=user(gradient_checkpointing=False, load_in_4bit=False, per_device_train_batch_size=4,
                                max_seq_length=4096))
    assert not plan.fits
    assert plan.alternative.startswith("turn on gradient checkpointing (--set gradient_checkpointing=true): ")


def test_a_model_too_big_for_any_change_is_told_of_a_bigger_gpu_or_a_smaller_model():
    plan = recommend(parse_hardware_spec("rtx4090"), find_model("meta-llama/Llama-3.1-70B"), DATA)
    assert not plan.fits and plan.alternative.startswith("a GPU with at least")
    assert "such as meta-llama/Llama-3.1-8B" in plan.alternative


def offered_need(alternative: str) -> tuple[float, float] | None:
    found = re.search(r"([\d.]+) GiB of ([\d.]+) GiB usable$", alternative)
    return (float(found[1]), float(found[2])) if found else None


@pytest.mark.parametrize("hardware", ["laptop-8gb", "t4", "rtx4090", "a100-40gb"])
@pytest.mark.parametrize("model", ["meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.1-8B", "Qwen/Qwen2.5-14B"])
@pytest.mark.parametrize("given", [{}, {"gradient_checkpointing": False}, {"load_in_4bit": False},
                                   {"per_device_train_batch_size": 16, "max_seq_length": 4096}])
def test_every_offered_change_fits_when_re_estimated(hardware, model, given):
    profile, facts = parse_hardware_spec(hardware), find_model(model)
    plan = recommend(profile, facts, DATA, given=user(**given))
    if plan.fits:
        assert plan.alternative is None or plan.alternative == ""
        return
    offered = offered_need(plan.alternative)
    if offered is None:
        assert plan.alternative.startswith("a GPU with at least")
        return
    need, usable = offered
    assert need <= usable
    assert usable == pytest.approx(plan.budget_bytes / GIB, abs=0.05)
