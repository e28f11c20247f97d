"""The plan is the run (lorawiz/planning.py): filling from the plan, adapting to this machine, precedence."""

from __future__ import annotations

import re

import pytest

from lorawiz.config.layers import PRECEDENCE
from lorawiz.config.resolve import resolve_config
from lorawiz.errors import LorawizError
from lorawiz.hardware import parse_hardware_spec
from lorawiz.planning import adapt_to_machine, fill_from_plan, gather, make_plan


@pytest.fixture
def data(tmp_path):
    import json

    path = tmp_path / "train.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": "yes"}]}
            for i in range(50)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def plan_for(data, hardware="a100-80gb", **flags):
    resolved = resolve_config(None, flags={"model_name_or_path": "builtin:tiny", "train_file": data, **flags},
                              flag_names={})
    inputs = gather(resolved, hardware=parse_hardware_spec(hardware))
    plan = make_plan(inputs)
    return resolved, plan, fill_from_plan(resolved, plan)


def test_the_recommender_fills_only_what_nobody_set(data):
    resolved, plan, filled = plan_for(data, lora_r=4, seed=0)
    assert filled.value("lora_r") == 4 and filled.source("lora_r").kind == "flag"
    assert filled.value("seed") == 0
    assert filled.source("learning_rate").kind == "recommender" and filled.value("learning_rate") == 2e-4
    assert filled.source("learning_rate").reason == plan.values["learning_rate"].reason


def test_a_files_fp16_turns_the_recommended_bf16_off_and_the_config_validates(data, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(f"model_name_or_path: builtin:tiny\ntrain_file: {data}\nfp16: true\n")
    resolved = resolve_config(config)
    filled = fill_from_plan(resolved, make_plan(gather(resolved, hardware=parse_hardware_spec("a100-80gb"))))
    assert (filled.value("bf16"), filled.value("fp16")) == (False, True)


def test_a_plan_for_other_hardware_runs_here_with_the_changes_said(data):
    _, _, filled = plan_for(data, hardware="rtx4090")
    assert filled.value("bf16") is True and filled.value("optim") == "paged_adamw_8bit"
    adapted, notes = adapt_to_machine(filled, parse_hardware_spec("cpu"), "rtx4090")
    assert adapted.value("bf16") is False and adapted.value("optim") == "adamw_torch"
    assert adapted.source("bf16").kind == "adjusted" and "no GPU" in adapted.source("bf16").reason
    assert any(note.startswith("bf16: True -> False") for note in notes)
    assert any(note.startswith("optim: paged_adamw_8bit -> adamw_torch") for note in notes)


def test_a_users_value_this_machine_cannot_run_is_refused_not_changed(data):
    _, _, filled = plan_for(data, hardware="rtx4090", bf16=True)
    with pytest.raises(LorawizError, match="bf16 = True .* cannot run here"):
        adapt_to_machine(filled, parse_hardware_spec("cpu"), "rtx4090")


def test_a_sharded_plan_for_other_hardware_runs_here_as_one_process(data):
    from lorawiz.config.layers import recommended

    _, _, filled = plan_for(data, hardware="2xrtx4090")
    sharded = filled.with_values({"parallelism": ("fsdp", recommended("planned for 2 GPUs")),
                                  "cpu_offload": (True, recommended("planned for 2 GPUs"))})
    adapted, notes = adapt_to_machine(sharded, parse_hardware_spec("rtx4090"), "2xrtx4090", sharded_launch=False)
    assert (adapted.value("parallelism"), adapted.value("cpu_offload")) == ("ddp", False)
    assert any(note.startswith("parallelism: fsdp -> ddp") for note in notes)
    kept, _ = adapt_to_machine(sharded, parse_hardware_spec("rtx4090"), "2xrtx4090", sharded_launch=True)
    assert kept.value("parallelism") == "fsdp"


def test_the_documented_precedence_is_the_codes():
    """`train --help`, `plan --help` and `config show --help` state the order PRECEDENCE applies."""
    from lorawiz.cli.config import show
    from lorawiz.cli.plan import plan_command
    from lorawiz.cli.train import train_command

    words = {"built-in defaults": "default", "the recommender": "recommender", "--preset": "preset",
             "CONFIG": "file", "CONFIG file": "file", "--set": "set", "flags": "flag", "typed flags": "flag"}
    for command in (train_command, plan_command, show):
        doc = " ".join(command.__doc__.split())
        found = re.search(r"(built-in defaults < [^.;]*?flags)", doc)
        assert found, command.__name__
        order = [words[part.strip()] for part in found.group(1).split("<")]
        assert order == [kind for kind in PRECEDENCE if kind in order], (command.__name__, order)
        assert order == ["default", "recommender", "preset", "file", "set", "flag"]


@pytest.mark.parametrize(("flags", "message"), [
    ({"lora_r": 10**11}, "lora_r 100,000,000,000 is larger than the smallest targeted layer dimension"),
    ({"max_seq_length": 10**6}, "max_seq_length 1,000,000 is longer than"),
])
def test_values_beyond_the_models_shape_are_refused(data, flags, message):
    from lorawiz.errors import ProblemsError

    with pytest.raises(ProblemsError, match=message):
        plan_for(data, **flags)


def test_target_modules_the_model_lacks_are_refused(data):
    from lorawiz.errors import ProblemsError

    resolved = resolve_config(None, flags={"model_name_or_path": "builtin:tiny", "train_file": data}, flag_names={},
                              set_items=["lora_target_modules=[qq_proj]"])
    with pytest.raises(ProblemsError, match=r"has no such layers \(its linear layers: q_proj"):
        gather(resolved, hardware=parse_hardware_spec("cpu"))
