"""The wizard's journey: hardware -> model -> data (measured first) -> task and preset -> the files made from the
data (wizard/data.py) -> plan (change any value) -> config file.

Each step reads its flag first and asks only when the flag was not given. The end is a commented YAML config that
`lorawiz train` runs, the equivalent non-interactive command, and the train command.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lorawiz.errors import LorawizError
from lorawiz.wizard.data import CREATED, choose_data, inspect_data, prepare_data, suggested_task
from lorawiz.wizard.prompter import Prompter

TASK_HELP = {
    "chat": "a conversational assistant (multi-turn chat)",
    "instruction": "follow single instructions (alpaca-style)",
    "code": "write or explain code",
    "domain": "learn a domain's knowledge and style (mix in general data)",
    "classification": "answer with one label from a fixed set",
}
SUGGESTED_MODELS = ("meta-llama/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-3B-Instruct", "Qwen/Qwen2.5-7B-Instruct",
                    "meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen3-14B", "Qwen/Qwen2.5-32B-Instruct",
                    "meta-llama/Llama-3.3-70B-Instruct")
OTHER = "__other__"
DOES_NOT_FIT = 3  # the exit code of a plan that does not fit, as `lorawiz plan` uses


@dataclass
class InitOptions:
    model: str | None = None
    data: str | None = None
    val_data: str | None = None
    task: str | None = None
    preset: str | None = None
    output_dir: str | None = None
    hardware: str | None = None
    config_out: str | None = None
    set_items: list[str] = field(default_factory=list)
    overwrite: bool = False


@dataclass
class WizardResult:
    config_path: Path
    command: str  # the non-interactive equivalent
    train_command: str
    values: dict[str, Any]


def _check_model(answer: str) -> str | None:
    from lorawiz.builtin import local_path
    from lorawiz.model_facts import load_model_facts

    try:
        load_model_facts(local_path(answer.strip()))
    except LorawizError as exc:
        return exc.message
    return None


def choose_model(opts: InitOptions, prompter: Prompter, hardware: Any) -> str | None:
    if opts.model:
        problem = _check_model(opts.model)
        if problem:
            raise LorawizError(f"--model {opts.model}: {problem}", hint="Give a hub id, a catalog alias or a "
                                                                       "local model folder.")
        return opts.model
    if not prompter.interactive:
        return prompter.required("--model", "", _check_model)
    choices, default = _model_choices(hardware)  # what fits the hardware in the panel above
    chosen = prompter.select("Base model", choices, default)
    if chosen == OTHER:
        chosen = prompter.text("Hub id or local folder", "", _check_model).strip()
    return chosen


def _model_choices(hardware: Any) -> tuple[list[tuple[str, str]], str]:
    """The suggestions with the memory each needs on `hardware` and whether that fits; without a GPU, the
    built-in tiny model first (it trains in seconds on a CPU) and fp32 figures, as a CPU trains (4-bit is for GPUs)."""
    from lorawiz.catalog import find_model
    from lorawiz.memory import GIB, TrainingShape, estimate_memory
    from lorawiz.recommend import MEMORY_BUDGET

    cpu = hardware.is_cpu_only
    budget = ((hardware.ram_bytes if cpu else hardware.smallest_gpu_free_bytes) or 0) * MEMORY_BUDGET
    shape = (TrainingShape(precision="fp32", quantization="none", seq_len=1024, on_gpu=False) if cpu
             else TrainingShape(quantization="nf4-dq", seq_len=1024))
    choices, fitting = [], []
    if cpu:
        choices.append(("builtin:tiny", f"{'builtin:tiny':<34}  tiny, trains in seconds, fits"))
    for name in SUGGESTED_MODELS:
        facts = find_model(name)
        need = estimate_memory(facts, shape).total
        fits = ("fit unknown (RAM unknown)" if cpu else "fit unknown") if not budget else (
            "fits" if need <= budget else "too big")
        choices.append((name, f"{name:<34} {facts.parameters()['total'] / 1e9:4.1f}B {need / GIB:4.1f} GiB "
                              f"{'fp32' if cpu else '4-bit'}, {fits}"))
        if fits == "fits" and facts.parameters()["total"] < 9e9:  # bigger ones train far slower for a first run
            fitting.append(name)
    choices.append((OTHER, "another model: a hub id or a local folder"))
    default = "builtin:tiny" if cpu else fitting[-1] if fitting else SUGGESTED_MODELS[0]
    return choices, default


def _fit(title: str, width: int = 74) -> str:
    """A choice title that fits an 80-column terminal beside the prompt's pointer."""
    return title if len(title) <= width else title[: width - 1].rstrip() + "…"


def choose_task_and_preset(opts: InitOptions, prompter: Prompter, suggested: str = "chat") -> tuple[str, str]:
    from lorawiz.config.schema import TASKS
    from lorawiz.presets import preset_info

    task = opts.task or prompter.select("What should the model learn?",
                                        [(t, _fit(f"{t:<15} {TASK_HELP.get(t, '')}")) for t in TASKS], suggested)
    if task not in TASKS:
        raise LorawizError(f"--task {task}: unknown task.", hint=f"Use one of: {', '.join(TASKS)}.")
    scenarios = ("quick", "standard", "production", "memory", "time")
    preset = opts.preset or prompter.select(
        "Scenario preset", [(name, _fit(f"{name:<11} {preset_info(name).summary}")) for name in scenarios],
        "standard")
    return task, preset


def resolve(values_flags: dict[str, Any], preset: str, set_items: list[str]) -> Any:
    from lorawiz.config.resolve import resolve_config

    names = {"model_name_or_path": "--model", "train_file": "--data", "validation_file": "--val-data",
             "task": "--task", "output_dir": "--output-dir"}  # `lorawiz init`'s flags, as errors name them
    return resolve_config(None, preset=preset, set_items=set_items, flags=values_flags, flag_names=names)


def plan_step(flags: dict[str, Any], preset: str, opts: InitOptions, prompter: Prompter) -> tuple[Any, Any, list]:
    """Show the plan; in a terminal, let the user change any value and re-check the fit."""
    from lorawiz.config.schema import format_value
    from lorawiz.planning import fill_from_plan, gather, make_plan
    from lorawiz.views.plan import render_plan

    set_items = list(opts.set_items)
    while True:
        resolved = resolve(flags, preset, set_items)
        inputs = gather(resolved, opts.hardware)
        plan = make_plan(inputs)
        filled = fill_from_plan(resolved, plan)
        prompter.show(render_plan(inputs, plan, filled, plain=not prompter.interactive))
        if not prompter.interactive or prompter.accept_defaults:
            if not plan.fits:
                raise _does_not_fit(plan)
            return filled, plan, set_items
        names = list(plan.values)
        options = ([("accept", "looks good: write the config"), ("change", "change a value")] if plan.fits else
                   [("change", "change a value: this plan does not fit"), ("accept", "write the config anyway")])
        if opts.hardware is None:  # planned for this machine: a sweep here finds its rate
            options.append(("lr-find", "find a learning rate: a short sweep here, on this data (lorawiz lr-find)"))
        action = prompter.select("Plan", options, "accept" if plan.fits else "change")
        if action == "accept":
            return filled, plan, set_items
        if action == "lr-find":
            rate = _lr_find_step(resolved, prompter)
            if rate is not None:
                set_items.append(f"learning_rate={format_value(rate)}")  # as the config's comment writes it
            continue
        shown = {n: format_value(filled.value(n)) if filled.value(n) is not None else "" for n in names}
        name = prompter.select("Which value? (type to filter)", [(n, f"{n} = {shown[n]}") for n in names],
                               names[0], search=True)
        value = prompter.text(f"New value for {name}", shown[name], _value_checker(name))
        set_items.append(f"{name}={value.strip()}")


def _lr_find_step(resolved: Any, prompter: Prompter) -> float | None:
    """Sweep the learning rate with the plan's settings (lorawiz.train.lr_find), show the curve, and return the
    suggested rate when the user takes it."""
    from lorawiz.train.lr_find import STEPS, LrFindRequest, find_learning_rate
    from lorawiz.views.lr_find import render_lr_find

    def progress(step: int, steps: int, rate: float, smoothed: float) -> None:
        if step % max(1, steps // 5) == 0:
            prompter.say(f"lr-find step {step}/{steps}: rate {rate:.1e}, smoothed loss {smoothed:.4g}")

    prompter.say(f"lr-find: {STEPS} training steps with the learning rate rising; nothing is saved.")
    result = find_learning_rate(LrFindRequest(resolved, plain=True, say=prompter.say, progress=progress))
    prompter.show(render_lr_find(result, plain=False))
    rate = result.suggested_rate
    if rate is None or not prompter.confirm(f"Use learning rate {rate:.1e} (the valley rule)?", default=True):
        return None
    return rate


def _does_not_fit(plan: Any) -> LorawizError:
    from lorawiz.memory import GIB

    return LorawizError(f"the plan does not fit: predicted peak memory {plan.memory.total / GIB:.1f} GiB, "
                        f"{plan.budget_bytes / GIB:.1f} GiB usable; no config was written.",
                        hint=f"Cheapest change: {plan.alternative}.", exit_code=DOES_NOT_FIT)


def _value_checker(name: str):
    """Ask again when the new value would not pass the config's own validation."""

    def check(answer: str) -> str | None:
        from lorawiz.config.resolve import resolve_config
        from lorawiz.errors import ProblemsError

        try:
            resolve_config(None, set_items=[f"{name}={answer.strip()}"])
        except ProblemsError as exc:
            return "; ".join(problem.message for problem in exc.problems)
        except LorawizError as exc:
            return exc.message
        return None

    return check


def write_config(path: Path, filled: Any) -> None:
    """A sectioned YAML config with a comment on every line: the value's source and why (untouched built-in
    defaults left out: `lorawiz train` supplies the same)."""
    from lorawiz.config.files import write_config_file
    from lorawiz.config.schema import format_value

    values = filled.flat()
    comments, skip = {}, {}
    for name, value in values.items():
        source = filled.source(name)
        skip[name] = value is None or source.kind == "default"
        # a value set at the plan step (or with --set) reads as typed there: "--set learning_rate=2e-4"
        comments[name] = f"--set {name}={format_value(value)}" if source.kind == "set" else source.explained
    from lorawiz.ownership import INIT_HEADER

    header = f"{INIT_HEADER} Train with: lorawiz train {path}"  # the header marks it as init's to replace
    write_config_file(path, values, header, comments, skip)


def _slug(name: str) -> str:
    """A folder-name part: "builtin:tiny" -> "tiny", "meta-llama/Llama-3.1-8B" -> "llama-3.1-8b" (no ":")."""
    import re

    last = name.removeprefix("builtin:").rstrip("/").rsplit("/", 1)[-1].lower()
    return re.sub(r"[^a-z0-9._-]+", "-", last).strip("-.") or "run"


def run_wizard(opts: InitOptions, prompter: Prompter) -> WizardResult:
    """The journey; Ctrl-C at any prompt removes the data files it wrote on the way and re-raises Cancelled."""
    from lorawiz.wizard.prompter import Cancelled

    CREATED.clear()
    try:
        return _journey(opts, prompter)
    except Cancelled:
        for path in CREATED:
            path.unlink(missing_ok=True)
        raise


def _show_hardware(hardware: Any, prompter: Prompter) -> None:
    from lorawiz.hardware import describe

    lines = describe(hardware)
    if not prompter.interactive:
        prompter.say("hardware: " + "; ".join(lines))
        return
    from rich.panel import Panel

    prompter.show(Panel("\n".join(lines), title="hardware", title_align="left", expand=False))


def _journey(opts: InitOptions, prompter: Prompter) -> WizardResult:
    from lorawiz.hardware import parse_hardware_spec, probe

    hardware = parse_hardware_spec(opts.hardware) if opts.hardware else probe(opts.output_dir or ".")
    _show_hardware(hardware, prompter)
    model = choose_model(opts, prompter, hardware)
    data = choose_data(opts.data, prompter)
    prompter.raise_missing()
    stats = inspect_data(data, prompter)  # first, so that the task question can default from what is in it
    task, preset = choose_task_and_preset(opts, prompter, suggested_task(data, stats))
    if stats.shape == "preference" and not any(item.split("=")[0].strip().endswith("method")
                                               for item in opts.set_items):
        prompter.say("the data holds preference pairs (chosen/rejected): the run trains with DPO (--set method=dpo)")
        opts = replace(opts, set_items=[*opts.set_items, "method=dpo"])
    data, val = prepare_data(data, stats, opts, prompter, task)
    output_dir = opts.output_dir or f"outputs/{_slug(model)}-{_slug(Path(data).stem.split('.')[0])}"
    config_out = Path(opts.config_out or "lorawiz.yaml")
    if config_out.exists():
        from lorawiz.ownership import check_config_replaceable

        check_config_replaceable(config_out)  # only a config lorawiz init wrote, whatever the flags and answers
        if not opts.overwrite and not prompter.confirm(f"{config_out} exists. Replace it?", default=False):
            raise LorawizError(f"{config_out} already exists.", hint="Pass --config-out FILE, or --overwrite.")
    flags = {"model_name_or_path": model, "train_file": data, "task": task, "output_dir": output_dir}
    if val:
        flags["validation_file"] = val
    filled, plan, set_items = plan_step(flags, preset, opts, prompter)
    values = filled.flat()
    write_config(config_out, filled)
    command = ["lorawiz", "init", "--model", model, "--data", data, "--task", task, "--preset", preset,
               "--output-dir", output_dir, "--config-out", str(config_out)]
    if val:
        command += ["--val-data", val]
    if opts.hardware:
        command += ["--hardware", opts.hardware]
    for item in set_items:
        command += ["--set", item]
    command.append("--yes")
    return WizardResult(config_out, " ".join(shlex.quote(c) for c in command),
                        f"lorawiz train {shlex.quote(str(config_out))}", values)
