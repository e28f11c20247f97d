"""Gather what the recommender needs (config, hardware, model, data), make a plan, and fill the configuration from
it; used by `plan`, `train` and `init`.

This is the impure edge around lorawiz.recommend: it probes NVML, reads the model's config and measures the data.
The one step that puts the recommender's values into the run is `fill_from_plan`; the one step that changes
values so this machine can execute a plan made for other hardware is `adapt_to_machine`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorawiz.config.layers import Source, adjusted, recommended
from lorawiz.config.schema import format_value
from lorawiz.errors import LorawizError
from lorawiz.recommend import Choice, DataFacts, Plan, recommend

# Knobs the recommender may fill: the schema's `auto` knobs (None means "the recommender decides").
RECOMMENDED_KINDS = ("default", "derived")


@dataclass
class PlanInputs:
    hardware: Any  # HardwareProfile
    model: Any  # ModelFacts
    data: DataFacts | None
    data_stats: Any  # DataStats, when a data file was given
    resolved: Any  # ResolvedConfig: what the preset and the user set
    notes: list[str] = field(default_factory=list)
    data_note: str | None = None  # where the tokenised data is, and whether it came from the cache


def gather(resolved: Any, hardware_spec: str | None = None, hardware: Any = None, tokenised: Any = None,
           data_note: str | None = None) -> PlanInputs:
    """Read the hardware (given, probed, or --hardware), the model's facts and the data's statistics: from the
    tokenised training file when given (lorawiz.data.tokenize.TokenisedFile, exact lengths as trained), else one
    streaming pass of `lorawiz inspect`."""
    from lorawiz.builtin import local_path
    from lorawiz.hardware import parse_hardware_spec, probe
    from lorawiz.model_facts import load_model_facts

    cfg = resolved.config
    model_name = cfg.model.model_name_or_path
    if not model_name:
        raise LorawizError("no model to plan for.", hint="Pass --model (a hub id such as meta-llama/Llama-3.1-8B, "
                                                         "a catalog alias, a local folder, or builtin:tiny).")
    if hardware is None:
        hardware = parse_hardware_spec(hardware_spec) if hardware_spec else probe(cfg.logging.output_dir or ".")
    model_path = local_path(model_name)
    model = load_model_facts(model_path)
    if model_path != model_name:  # a builtin: name is shown as such, not as its cache folder
        model = dataclasses.replace(model, name=model_name)
    data, stats = None, None
    if tokenised is not None:
        from lorawiz.data.stats import stats_from_lengths

        stats = stats_from_lengths(tokenised.source, tokenised.shape, tokenised.column("length"),
                                   f"tokenizer {model_name}, rows as trained (its chat template)",
                                   model_limit=model.context_length)
        data = DataFacts.from_stats(stats)
    elif cfg.data.train_file:
        from lorawiz.data.formats import ConvertOptions
        from lorawiz.data.stats import inspect_file

        tokenizer = _local_tokenizer(model_path)
        stats = inspect_file(local_path(cfg.data.train_file), tokenizer,
                             tokenizer_name=model_path if tokenizer else None, model_limit=model.context_length,
                             opts=ConvertOptions(preference=cfg.training.method != "sft"))
        data = DataFacts.from_stats(stats)
    check_against_model(resolved, model)
    return PlanInputs(hardware, model, data, stats, resolved, data_note=data_note)


def check_against_model(resolved: Any, model: Any) -> None:
    """The ranges the model's shape sets: a LoRA rank above the smallest dimension of a targeted layer adds nothing
    (the update cannot have a higher rank than the layer), a sequence longer than the context is unsupported, and
    named target modules must exist. Every problem at once, each with its source."""
    from lorawiz.errors import Problem, ProblemsError
    from lorawiz.lora_size import targeted_linears

    cfg, found = resolved.config, []
    targets = cfg.lora.lora_target_modules
    linears = targeted_linears(model, targets)
    if not isinstance(targets, str):
        missing = [name for name in targets if name not in model.linear_shapes()]
        if missing and not linears:
            known = ", ".join(model.linear_shapes())
            found.append(Problem(resolved.source("lora_target_modules").where,
                                 f"lora_target_modules {missing}: {model.name} has no such layers (its linear layers: "
                                 f"{known}; or use all-linear)."))
    rank = cfg.lora.lora_r
    if rank is not None and linears:
        smallest = min((min(shape) for shape in linears.values() if min(shape) > 1),  # not Qwen2-MoE's 1-wide gate
                       default=rank)
        if rank > smallest:
            found.append(Problem(resolved.source("lora_r").where,
                                 f"lora_r {rank:,} is larger than the smallest targeted layer dimension of "
                                 f"{model.name} ({smallest:,}): a rank above it adds parameters but no capacity. "
                                 f"Use at most {smallest:,} (8-64 is usual)."))
    length = cfg.data.max_seq_length
    if length is not None and length > model.context_length:
        found.append(Problem(resolved.source("max_seq_length").where,
                             f"max_seq_length {length:,} is longer than {model.name}'s context of "
                             f"{model.context_length:,} tokens. Use at most {model.context_length:,}."))
    if found:
        raise ProblemsError("the configuration does not fit the model", found)


def _local_tokenizer(model_name: str) -> Any:
    """The model's tokenizer when it is a local folder (exact token counts); None means estimate from characters.

    A hub id is not fetched here: planning must stay quick and work offline.
    """
    folder = Path(model_name).expanduser()
    if not (folder / "tokenizer.json").exists() and not (folder / "tokenizer_config.json").exists():
        return None
    from lorawiz.data.tokens import load_tokenizer

    return load_tokenizer(str(folder))


def given_choices(resolved: Any) -> dict[str, Choice]:
    """The values a preset or the user set, as the recommender's fixed choices."""
    given = {}
    for name, value in resolved.flat().items():
        source = resolved.source(name)
        if source.kind in RECOMMENDED_KINDS or value is None:
            continue
        why = (f"set by the {source.label}" if source.kind == "preset" else source.reason
               if source.kind == "adjusted" else "your value: it wins over the recommendation")
        given[name] = Choice(value, why, source)
    return given


def make_plan(inputs: PlanInputs) -> Plan:
    resolved = inputs.resolved
    chosen = resolved.value("layers_to_transform") or []
    outside = [index for index in chosen if not 0 <= index < inputs.model.layers]
    if outside:
        source = resolved.source("layers_to_transform")
        raise LorawizError(f"layers_to_transform {format_value(outside)} ({source.where or source.label}): "
                           f"{inputs.model.name} has layers 0 to {inputs.model.layers - 1}.",
                           hint="Give indices in that range, or leave it unset for adapters on every layer.")
    return recommend(inputs.hardware, inputs.model, inputs.data, resolved.config.data.task,
                     given_choices(resolved), resolved.flat())


def fill_from_plan(resolved: Any, plan: Plan) -> Any:
    """The configuration the run uses: the recommender's value for every knob that nobody set, validated again."""
    changes = {}
    for name, choice in plan.values.items():
        # a knob nobody set, or one set to auto (None: "the recommender decides")
        if choice.by_recommender and (resolved.source(name).kind in RECOMMENDED_KINDS or resolved.value(name) is None):
            changes[name] = (choice.value, recommended(choice.reason))
    return resolved.with_values(changes)


def adapt_to_machine(resolved: Any, machine: Any, planned_for: str | None, sharded_launch: bool = True
                     ) -> tuple[Any, list[str]]:
    """Change what this machine cannot execute in a plan made for other hardware (`train --hardware SPEC`); each
    change is returned as a line to print.

    A value the user set that this machine cannot execute is refused, never changed.
    """
    cfg = resolved.config
    changes: dict[str, tuple[Any, Source]] = {}
    notes: list[str] = []
    where = f"planned for --hardware {planned_for}, but" if planned_for else ""

    def change(name: str, value: Any, why: str) -> None:
        source = resolved.source(name)
        if source.is_user or source.kind == "preset":
            raise LorawizError(f"{name} = {resolved.value(name)} ({source.where or source.label}) cannot run here: "
                               f"{why}.", hint="Remove it, or run on a machine that has what it needs.")
        reason = f"{where} {why}".strip()
        changes[name] = (value, adjusted(reason))
        notes.append(f"{name}: {resolved.value(name)} -> {value} ({reason})")

    if cfg.optimization.tf32 and (machine.is_cpu_only or not machine.supports_bf16):
        change("tf32", False, "TF32 needs an NVIDIA GPU of compute capability 8.0 or newer (Ampere)")
    if machine.is_cpu_only:
        for precision in ("bf16", "fp16"):
            if getattr(cfg.optimization, precision):
                change(precision, False, f"this machine has no GPU, so {precision} mixed precision cannot run")
            elif planned_for and resolved.source(precision).kind == "recommender":  # its reason spoke of a GPU
                changes[precision] = (False, adjusted("no GPU: fp32 on the CPU"))
        optim = cfg.optimization.optim or ""
        if "8bit" in optim or optim.startswith("paged"):
            change("optim", "adamw_torch", f"{optim} needs CUDA, and this machine has no GPU")
    elif cfg.optimization.bf16 and not machine.supports_bf16:
        change("bf16", False, "this GPU has no bf16 (compute capability < 8.0)")
        if not cfg.optimization.fp16:
            changes["fp16"] = (True, adjusted("fp16 instead of bf16 on this GPU"))
            notes.append("fp16: false -> true (fp16 instead of bf16 on this GPU)")
    if cfg.optimization.parallelism in ("fsdp", "deepspeed") and not sharded_launch:
        # a plan for other hardware (--hardware 2xrtx4090) chose sharding; this process was not launched for it
        change("parallelism", "ddp", f"{cfg.optimization.parallelism} needs the processes launched for it, and this "
                                     "run is one process that was not")
        if cfg.optimization.cpu_offload:
            change("cpu_offload", False, "offloading needs a sharded run")
    return (resolved.with_values(changes) if changes else resolved), notes


def plan_json(inputs: PlanInputs, plan: Plan, resolved: Any) -> dict[str, Any]:
    """The plan for scripts: the same values, sources and reasons as the table."""
    from dataclasses import asdict

    from lorawiz.views.plan import plan_rows

    return {
        "hardware": inputs.hardware.to_dict(),
        "model": {"name": inputs.model.name, "parameters": inputs.model.parameters()["total"],
                  "active_parameters": inputs.model.parameters()["active"],
                  "layers": inputs.model.layers, "context_length": inputs.model.context_length},
        "data": asdict(inputs.data) if inputs.data else None,
        "values": {row.name: {"value": row.value, "source": row.source, "kind": row.kind, "reason": row.reason}
                   for row in plan_rows(plan, resolved)},
        "steps": plan.steps or None,
        "train_rows": plan.train_rows or None,
        "memory": plan.memory.as_dict() if plan.memory else None,
        "budget_bytes": None if plan.budget_bytes == float("inf") else round(plan.budget_bytes),
        "headroom_bytes": (None if plan.budget_bytes == float("inf") or not plan.memory
                           else round(plan.budget_bytes - plan.memory.total)),
        "fits": plan.fits,
        "notes": plan.notes,
        "warnings": plan.warnings,
        "alternative": plan.alternative,
        "time": asdict(plan.time) if plan.time else None,
    }
