"""The wizard's journey: hardware -> model -> data -> task and preset -> plan (change any value) -> config file.

Each step reads its flag first and asks only when the flag was not given. The end is a commented YAML config that
`lorawiz train` runs, the equivalent non-interactive command, and the train command.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorawiz.errors import LorawizError
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


CREATED: list[Path] = []  # data files the wizard wrote on the way, removed again if the user cancels


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


def _check_data(answer: str) -> str | None:
    path = Path(answer.strip()).expanduser()
    if not answer.strip():
        return "give the path of a data file"
    if answer.startswith("builtin:"):
        return None
    if not path.is_file():
        return f"{path} not found"
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
    from lorawiz.catalog import find_model
    from lorawiz.memory import GIB, TrainingShape, estimate_memory

    budget = (hardware.smallest_gpu_free_bytes or hardware.ram_bytes or 0) * 0.9
    choices = []
    for name in SUGGESTED_MODELS:
        facts = find_model(name)
        need = estimate_memory(facts, TrainingShape(quantization="nf4-dq", seq_len=1024,
                                                    on_gpu=not hardware.is_cpu_only)).total
        fits = "fits" if not budget or need <= budget else "too big"
        choices.append((name, f"{name:<34} {facts.parameters()['total'] / 1e9:4.1f}B "
                              f"{need / GIB:4.1f} GiB 4-bit, {fits}"))
    choices.append((OTHER, "another model: a hub id or a local folder"))
    # The default: the largest suggestion up to 8B that fits; bigger ones train far slower for a first run.
    fitting = [n for n, title in choices if title.endswith("fits") and find_model(n).parameters()["total"] < 9e9]
    default = fitting[-1] if fitting else SUGGESTED_MODELS[0]
    chosen = prompter.select("Base model", choices, default)
    if chosen == OTHER:
        chosen = prompter.text("Hub id or local folder", "", _check_model).strip()
    return chosen


def choose_data(opts: InitOptions, prompter: Prompter) -> str | None:
    if opts.data:
        problem = _check_data(opts.data)
        if problem:
            raise LorawizError(f"--data {opts.data}: {problem}.", hint="Give an existing data file.")
        return opts.data
    answer = prompter.required("--data", "Training data (JSONL, JSON, CSV/TSV, Parquet)", _check_data)
    return answer.strip() if answer else None


def prepare_data(data: str, opts: InitOptions, prompter: Prompter, task: str) -> tuple[str, str | None]:
    """Show the data's statistics; offer to convert, to hold out validation rows and (domain) to mix."""
    if data.startswith("builtin:"):
        return data, opts.val_data
    from lorawiz.data.stats import inspect_file

    stats = inspect_file(data)
    bad = sum(e["count"] for e in stats.bad_rows.values())
    prompter.say(f"data: {stats.rows:,} rows, shape {stats.shape} ({stats.shape_reason}); {stats.length.unit} p50 "
         f"{stats.length.p50:,}, p95 {stats.length.p95:,}, p99 {stats.length.p99:,}"
         + (f"; {bad:,} bad rows" if bad else ""))
    path = Path(data)
    if stats.shape not in ("messages", "text") or bad:
        target = path.with_name(path.stem + ".chat.jsonl")
        why = "has bad rows" if bad else f"is in {stats.shape} shape"
        if prompter.confirm(f"The file {why}. Write a clean chat copy to {target} (lorawiz format"
                            f"{' --skip-bad' if bad else ''})?", default=bool(bad)):
            from lorawiz.data.convert import format_file

            report = format_file(path, target, skip_bad=bool(bad), overwrite=opts.overwrite)
            CREATED.extend(p for p in (target, report.rejects_path, report.meta_path) if p)
            prompter.say(f"wrote {report.rows_written:,} rows to {target}")
            path = target
    val = opts.val_data
    if val is None and prompter.confirm("Hold out 10% of the rows as a validation file (lorawiz split)?",
                                        default=False):
        from lorawiz.data.split import SplitSizes, split_file

        train_out, val_out = path.with_name(path.stem + ".train.jsonl"), path.with_name(path.stem + ".val.jsonl")
        report = split_file(path, {"train": train_out, "val": val_out}, SplitSizes(val_ratio=0.1),
                            overwrite=opts.overwrite)
        CREATED.extend((train_out, val_out))
        prompter.say(f"split: {report.counts['train']:,} training rows in {train_out}, {report.counts['val']:,} in "
                     f"{val_out}")
        path, val = train_out, str(val_out)
    if task == "domain" and prompter.confirm("Mix general instruction data into it against forgetting "
                                             "(lorawiz mix)?", default=False):
        general = prompter.text("General data file", "", _check_data).strip()
        share = prompter.text("Share of general data in the mix (0-1)", "0.2", _check_share)
        from lorawiz.data.mix import MixSource, mix_files

        mixed = path.with_name(path.stem + ".mixed.jsonl")
        report = mix_files([MixSource(str(path), 1 - float(share)), MixSource(general, float(share))], mixed,
                           overwrite=opts.overwrite)
        CREATED.append(mixed)
        prompter.say(f"mixed {report.total:,} rows into {mixed}")
        path = mixed
    return str(path), val


def _check_share(answer: str) -> str | None:
    try:
        value = float(answer)
    except ValueError:
        return "give a number between 0 and 1"
    return None if 0 < value < 1 else "give a number between 0 and 1"


def _fit(title: str, width: int = 74) -> str:
    """A choice title that fits an 80-column terminal beside the prompt's pointer."""
    return title if len(title) <= width else title[: width - 1].rstrip() + "…"


def choose_task_and_preset(opts: InitOptions, prompter: Prompter) -> tuple[str, str]:
    from lorawiz.config.schema import TASKS
    from lorawiz.presets import preset_info

    task = opts.task or prompter.select("What should the model learn?",
                                        [(t, _fit(f"{t:<15} {TASK_HELP.get(t, '')}")) for t in TASKS], "chat")
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
            return filled, plan, set_items
        names = list(plan.values)
        action = prompter.select("Plan", [("accept", "looks good: write the config"),
                                          ("change", "change a value")], "accept")
        if action == "accept":
            return filled, plan, set_items
        shown = {n: filled.value(n) for n in names}
        name = prompter.select("Which value? (type to filter)", [(n, f"{n} = {shown[n]}") for n in names],
                               names[0], search=True)
        value = prompter.text(f"New value for {name}", str(shown[name]), _value_checker(name))
        set_items.append(f"{name}={value.strip()}")


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

    values = filled.flat()
    comments, skip = {}, {}
    for name, value in values.items():
        source = filled.source(name)
        skip[name] = value is None or source.kind == "default"
        comments[name] = source.explained
    header = "# lorawiz config written by `lorawiz init`. Train with: lorawiz train " + str(path)
    write_config_file(path, values, header, comments, skip)


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
    data = choose_data(opts, prompter)
    prompter.raise_missing()
    task, preset = choose_task_and_preset(opts, prompter)
    data, val = prepare_data(data, opts, prompter, task)
    output_dir = opts.output_dir or f"outputs/{Path(model).name.lower()}-{Path(data).stem.split('.')[0]}"
    config_out = Path(opts.config_out or "lorawiz.yaml")
    if config_out.exists() and not opts.overwrite and not prompter.confirm(
            f"{config_out} exists. Replace it?", default=False):
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
