"""Every schedule the schema accepts runs, with its lr_scheduler_kwargs, through the Trainer's own create_scheduler
on the SFTConfig lorawiz builds (issue 17, point 6): restarts restart, min_lr is the floor, warmup_stable_decay
decays in its last steps; a schedule missing what it needs is refused before any model loads."""

from __future__ import annotations

import types

import pytest

from lorawiz.config.resolve import resolve_config
from lorawiz.config.schema import SCHEDULERS
from lorawiz.errors import ProblemsError
from lorawiz.hardware import parse_hardware_spec
from lorawiz.planning import fill_from_plan, gather, make_plan
from lorawiz.train import args as make

STEPS, PEAK = 40, 1e-3
KWARGS = {"cosine_with_restarts": {"num_cycles": 2}, "cosine_with_min_lr": {"min_lr": 1e-4},
          "warmup_stable_decay": {"num_decay_steps": 10}, "polynomial": {"lr_end": 1e-5, "power": 2.0},
          "reduce_lr_on_plateau": {"patience": 2, "factor": 0.5}}


def learning_rates(schedule: str, kwargs: dict | None, tmp_path, warmup: int = 0) -> list[float]:
    import torch
    from transformers import Trainer

    flags = {"model_name_or_path": "builtin:tiny", "output_dir": str(tmp_path), "lr_scheduler_type": schedule,
             "learning_rate": PEAK, "warmup_steps": warmup, "eval_strategy": "no", "save_strategy": "no",
             "load_best_model_at_end": False, "early_stopping_patience": 0, "logging_steps": 1}
    if kwargs:
        flags["lr_scheduler_kwargs"] = kwargs
    if schedule == "reduce_lr_on_plateau":  # it steps on evaluations
        flags.update(eval_strategy="steps", eval_steps=1)
    resolved = resolve_config(flags=flags)
    cfg = fill_from_plan(resolved, make_plan(gather(resolved, hardware=parse_hardware_spec("a100-80gb")))).config
    args = make.trainer_config(cfg, output_dir=str(tmp_path), on_gpu=False, train_rows=STEPS)
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=args.learning_rate)
    trainer = types.SimpleNamespace(args=args, lr_scheduler=None, optimizer=optimizer)
    scheduler = Trainer.create_scheduler(trainer, num_training_steps=STEPS, optimizer=optimizer)  # the Trainer's code
    rates = []
    for _ in range(STEPS):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if schedule == "reduce_lr_on_plateau":
            scheduler.step(1.0)  # a loss that never improves
        else:
            scheduler.step()
    return rates


@pytest.mark.parametrize("schedule", SCHEDULERS)
def test_every_schedule_runs_with_its_kwargs(schedule, tmp_path):
    rates = learning_rates(schedule, KWARGS.get(schedule), tmp_path)
    assert len(rates) == STEPS and all(0 <= rate <= PEAK * (1 + 1e-9) for rate in rates), rates
    if schedule in ("constant", "constant_with_warmup"):
        assert set(rates) == {PEAK}
    elif schedule == "inverse_sqrt":
        assert rates[-1] < rates[0] == PEAK
    else:
        assert rates[-1] < PEAK  # every other schedule decays


def test_cosine_with_restarts_restarts(tmp_path):
    rates = learning_rates("cosine_with_restarts", {"num_cycles": 2}, tmp_path)
    rises = [i for i in range(1, STEPS) if rates[i] > rates[i - 1] + 1e-12]
    assert rises == [STEPS // 2]  # one restart, half way
    assert rates[STEPS // 2] == pytest.approx(PEAK)


def test_min_lr_is_the_floor_of_cosine_with_min_lr(tmp_path):
    rates = learning_rates("cosine_with_min_lr", {"min_lr": 1e-4}, tmp_path)
    assert min(rates) >= 1e-4 - 1e-12 and rates[-1] == pytest.approx(1e-4, rel=0.05)
    plain = learning_rates("cosine", None, tmp_path)
    assert plain[-1] < 1e-5  # plain cosine goes (almost) to zero


def test_min_lr_rate_is_a_share_of_the_peak(tmp_path):
    rates = learning_rates("cosine_with_min_lr", {"min_lr_rate": 0.25}, tmp_path)
    assert min(rates) >= 0.25 * PEAK - 1e-12


def test_warmup_stable_decay_holds_then_decays_in_its_last_steps(tmp_path):
    rates = learning_rates("warmup_stable_decay", {"num_decay_steps": 10}, tmp_path, warmup=5)
    assert rates[0] < rates[4] < PEAK  # warm-up
    assert set(rates[5:STEPS - 10]) == {PEAK}  # stable
    assert rates[-1] < rates[STEPS - 10] and rates[-1] < 0.1 * PEAK  # decay


def test_the_cosine_num_cycles_kwarg_changes_the_curve(tmp_path):
    assert learning_rates("cosine", {"num_cycles": 0.25}, tmp_path)[-1] > 0.5 * PEAK  # a quarter wave: still high


@pytest.mark.parametrize(("schedule", "kwargs", "says"), [
    ("cosine_with_min_lr", None, "needs lr_scheduler_kwargs min_lr or min_lr_rate"),
    ("warmup_stable_decay", None, "needs lr_scheduler_kwargs num_decay_steps"),
    ("cosine_with_restarts", None, "needs lr_scheduler_kwargs num_cycles"),
    ("cosine_with_restarts", {"num_cycles": 1}, "never restarts"),
    ("linear", {"min_lr": 1e-5}, "the linear schedule takes nothing"),
    ("cosine", {"power": 2}, "the cosine schedule takes num_cycles"),
    ("reduce_lr_on_plateau", None, "reduce_lr_on_plateau lowers the rate when an evaluation does not improve"),
])
def test_a_schedule_missing_or_given_the_wrong_kwargs_is_refused(schedule, kwargs, says):
    flags = {"lr_scheduler_type": schedule, **({"lr_scheduler_kwargs": kwargs} if kwargs else {}),
             "eval_strategy": "no", "load_best_model_at_end": False, "early_stopping_patience": 0}
    with pytest.raises(ProblemsError) as info:
        resolve_config(flags=flags)
    assert any(says in str(problem) for problem in info.value.problems), info.value.problems
