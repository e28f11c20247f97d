"""Validation: each section against the pydantic model built from the knob table, then the checks across fields;
every problem collected and reported at once.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lorawiz.config.layers import DEFAULT, Source, derived
from lorawiz.config.schema import DTYPE_ALIASES, KNOBS, LIST_KNOBS, PARALLELISM_ALIASES, SECTIONS
from lorawiz.errors import Problem, ProblemsError


@functools.cache
def section_models() -> tuple[dict[str, type], type]:
    """Build the pydantic models from `SECTIONS` (on first use, to keep `--help` free of pydantic)."""
    from typing import Annotated, Optional

    from pydantic import BeforeValidator, ConfigDict, Field, create_model

    strict = ConfigDict(extra="forbid", frozen=True)
    models: dict[str, type] = {}
    for section, knobs in SECTIONS.items():
        fields: dict[str, Any] = {}
        for knob in knobs:
            constraints = dict(knob.bounds)
            if knob.type is float:
                constraints["allow_inf_nan"] = False  # 1e400 reads as inf: never a setting
            type_ = Annotated[knob.type, Field(**constraints)] if constraints else knob.type
            if knob.type in (int, float, bool):
                type_ = Annotated[type_, BeforeValidator(_bool_apart(knob.type))]
            if knob.nullable:
                type_ = Optional[type_]  # noqa: UP045 - a runtime type expression, not an annotation
            if isinstance(knob.default, list):
                default = Field(default_factory=lambda d=knob.default: list(d), description=knob.help)
            else:
                default = Field(knob.default, description=knob.help)
            fields[knob.name] = (type_, default)
        models[section] = create_model(f"{section.title()}Config", __config__=strict, **fields)
    run_fields = {s: (m, Field(default_factory=m)) for s, m in models.items()}
    run_config = create_model("RunConfig", __config__=ConfigDict(extra="forbid", frozen=True), **run_fields)
    return models, run_config


def _bool_apart(kind: type) -> Any:
    """YAML and JSON let `true` pass for 1 and `1` for true; a setting means one or the other, so refuse both."""

    def check(value: Any) -> Any:
        if kind is bool and isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(f"must be true or false, not the number {value}")
        if kind is not bool and isinstance(value, bool):
            raise ValueError(f"must be a number, not {str(value).lower()}")
        return value

    return check


def normalize(name: str, value: Any) -> Any:
    """Accept the spellings people use: `fp16` for float16, comma lists, `none` for no trackers."""
    if name == "bnb_4bit_compute_dtype" and isinstance(value, str):
        return DTYPE_ALIASES.get(value.lower(), value.lower())
    if name == "lr_scheduler_kwargs" and isinstance(value, str):  # a flag or --set: YAML or JSON text
        from lorawiz.config import yaml12

        try:
            value = yaml12.load(value) if value.strip() else None
        except Exception:  # noqa: BLE001 - left as it is, pydantic then names the problem
            return value
    if name == "lr_scheduler_kwargs" and isinstance(value, dict):
        return {str(k): _number(v) for k, v in value.items()}  # YAML reads 1e-5 (no dot) as a string
    if name == "layers_to_transform":
        if isinstance(value, int) and not isinstance(value, bool):
            return [value]
        if isinstance(value, str):
            parts = [p.strip() for p in value.strip("[]").split(",") if p.strip()]
            return [int(p) if p.lstrip("-").isdigit() else p for p in parts]
        return value
    if name in LIST_KNOBS and isinstance(value, str):
        if name == "lora_target_modules" and value == "all-linear":
            return value
        parts = [p.strip() for p in value.strip("[]").split(",") if p.strip()]
        if name == "report_to" and parts in (["none"], []):
            return []
        return parts
    if name in ("eval_strategy", "save_strategy", "lr_scheduler_type"):
        # `eval_strategy: false` in YAML or JSON, as TrainingArguments configs write it; `No`, `Steps` as typed
        return "no" if value is False else value.lower() if isinstance(value, str) else value
    if name in ("parallelism", "cpu_offload") and isinstance(value, str) and value.lower() == "auto":
        return None  # the recommender decides, as when unset
    if name == "parallelism" and isinstance(value, str):
        return PARALLELISM_ALIASES.get(value.lower(), value.lower())
    if name == "task" and isinstance(value, str):
        return {"domain-adaptation": "domain", "domain_adaptation": "domain"}.get(value.lower(), value.lower())
    return value


def _number(value: Any) -> Any:
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number
    return value


def validate(values: Mapping[str, Any], sources: Mapping[str, Source], problems: Iterable[Problem] = ()
             ) -> tuple[Any, dict[str, Source]]:
    """Validate merged values section by section, then across fields; raise every problem at once.

    Returns the RunConfig and the sources (with derived defaults). `problems` are earlier findings (unknown
    keys, ...) to report together with these.
    """
    from pydantic import ValidationError

    models, run_config = section_models()
    values, sources = derive_defaults(values, sources)
    found = list(problems)
    built: dict[str, Any] = {}
    for section, model in models.items():
        data = {k.name: normalize(k.name, values.get(k.name, k.default)) for k in SECTIONS[section]}
        try:
            built[section] = model(**data)
        except ValidationError as exc:
            for err in exc.errors():
                name = str(err["loc"][0])
                found.append(Problem(sources.get(name, DEFAULT).where,
                                     _field_message(section, name, err, values.get(name))))
                data[name] = KNOBS[name].default
            # Defaults stand in for the bad values so that the cross-field checks still run.
            built[section] = model(**data)
    found.extend(_cross_field_problems(built, sources))
    if found:
        raise ProblemsError("invalid configuration", found,
                            hint="Fix the values above; `lorawiz config show` prints what each source sets.")
    return run_config(**built), sources


# Defaults that follow another choice; re-derived whenever the values change (a plan, an adjustment).
DERIVED = ("validation_file", "eval_strategy", "load_best_model_at_end", "early_stopping_patience", "save_strategy",
           "greater_is_better", "logging_dir", "run_name")


def derive_defaults(values: Mapping[str, Any], sources: Mapping[str, Source]
                    ) -> tuple[dict[str, Any], dict[str, Source]]:
    """Let built-in defaults follow what the user chose, instead of reporting a conflict with a default.

    No validation data turns evaluation off; no evaluation turns off best-model loading and early stopping;
    checkpoints follow the evaluation schedule; greater_is_better follows the metric's name.
    """
    values, sources = dict(values), dict(sources)
    for name in DERIVED:
        if sources.get(name, DEFAULT).is_default:
            values[name], sources[name] = KNOBS[name].default, DEFAULT

    def is_default(name: str) -> bool:
        return sources.get(name, DEFAULT).is_default

    def derive(name: str, value: Any, reason: str) -> None:
        values[name] = value
        sources[name] = derived(reason)

    if is_default("validation_file") and values.get("train_file") == "builtin:triage":
        derive("validation_file", "builtin:triage:validation", "builtin:triage brings its validation part")
    if is_default("eval_strategy") and not values.get("validation_file") and values.get("val_split") == 0:
        derive("eval_strategy", "no", "no validation data")
    elif (is_default("eval_strategy") and not is_default("save_strategy")
          and values.get("save_strategy") in ("steps", "epoch")):
        derive("eval_strategy", values["save_strategy"], "follows save_strategy, so that every checkpoint is scored")
    evaluating = values.get("eval_strategy") != "no"
    if not evaluating:
        if is_default("load_best_model_at_end"):
            derive("load_best_model_at_end", False, "no evaluation")
        if is_default("early_stopping_patience"):
            derive("early_stopping_patience", 0, "no evaluation")
    elif is_default("save_strategy") and values.get("save_strategy") != values.get("eval_strategy"):
        derive("save_strategy", values.get("eval_strategy"), "follows eval_strategy")
    if is_default("logging_dir") and isinstance(values.get("output_dir"), str) and values["output_dir"]:
        derive("logging_dir", str(Path(values["output_dir"]) / "logs"), "under output_dir")
    if is_default("run_name") and isinstance(values.get("output_dir"), str) and values["output_dir"]:
        derive("run_name", Path(values["output_dir"]).expanduser().resolve().name, "the output folder's name")
    metric = values.get("metric_for_best_model")
    if values.get("greater_is_better") is None and isinstance(metric, str):
        derive("greater_is_better", "loss" not in metric, f"from {metric}")
    return values, sources


def _field_message(section: str, name: str, err: Mapping[str, Any], raw: Any) -> str:
    message = err["msg"].replace("Input should be", "must be").removeprefix("Value error, ")
    text = f"{section}.{name} = {raw!r}: {message}"
    if err["type"] == "literal_error" and isinstance(raw, str):
        allowed = re.findall(r"'([^']+)'", err["msg"])
        guess = difflib.get_close_matches(raw, allowed, n=1, cutoff=0.5)
        if guess:
            text += f'. Did you mean "{guess[0]}"?'
    return text


def _datasets_problems(entries: list[dict[str, Any]], src: Any) -> list[Problem]:
    found = []
    weighted = [entry.get("weight") is not None for entry in entries]
    for number, entry in enumerate(entries, start=1):
        unknown = sorted(set(entry) - {"path", "weight", "max_samples", "split"})
        if not isinstance(entry.get("path"), str) or unknown:
            found.append(Problem(src("datasets"), f"datasets entry {number}: " + (
                f"{', '.join(unknown)}: not understood (path, weight, max_samples, split)" if unknown else
                "needs a path") + "."))
        for key, kind in (("weight", (int, float)), ("max_samples", (int,))):
            value = entry.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, kind) or value <= 0):
                found.append(Problem(src("datasets"), f"datasets entry {number}: {key} {value!r} must be a positive "
                                                      "number."))
    if any(weighted) and not all(weighted):
        found.append(Problem(src("datasets"), "datasets: some entries have a weight and some not; give every "
                                              "entry a weight (a share of the mix), or none."))
    return found


def _scheduler_problems(train: Any, log: Any, src: Any) -> list[Problem]:
    """lr_scheduler_kwargs against what the chosen schedule takes and needs (unset schedule: the recommender's
    cosine)."""
    from lorawiz.config.schema import SCHEDULER_KWARGS

    name = train.lr_scheduler_type or "cosine"
    kwargs = train.lr_scheduler_kwargs or {}
    accepted, needs = SCHEDULER_KWARGS[name]
    found = []
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        takes = ", ".join(sorted(accepted)) or "nothing"
        found.append(Problem(src("lr_scheduler_kwargs", "lr_scheduler_type"),
                             f"lr_scheduler_kwargs {', '.join(unknown)}: the {name} schedule takes {takes}."))
    for options in needs:
        if not any(option in kwargs for option in options):
            example = {"num_cycles": "{num_cycles: 3}", "min_lr": "{min_lr: 1.0e-5}",
                       "num_decay_steps": "{num_decay_steps: 200}"}[options[0]]
            found.append(Problem(src("lr_scheduler_type", "lr_scheduler_kwargs"),
                                 f"the {name} schedule needs lr_scheduler_kwargs {' or '.join(options)}, e.g. "
                                 f"--set lr_scheduler_kwargs='{example}'."))
    if name == "reduce_lr_on_plateau" and log.eval_strategy == "no":
        found.append(Problem(src("lr_scheduler_type", "eval_strategy"), "reduce_lr_on_plateau lowers the rate when an "
                                                                        "evaluation does not improve, but "
                                                                        "eval_strategy is \"no\"."))
    cycles = kwargs.get("num_cycles")
    if name == "cosine_with_restarts" and isinstance(cycles, int | float) and cycles < 2:
        found.append(Problem(src("lr_scheduler_kwargs"), f"cosine_with_restarts with num_cycles {cycles} never "
                                                         "restarts (it is cosine); give 2 or more, or use cosine."))
    return found


def _cross_field_problems(cfg: Mapping[str, Any], sources: Mapping[str, Source]) -> list[Problem]:
    """Checks that no single field can make: conflicting precisions, impossible best-model tracking, ..."""
    opt, train, log, data, model = cfg["optimization"], cfg["training"], cfg["logging"], cfg["data"], cfg["model"]
    found: list[Problem] = []

    def src(*names: str) -> str:
        return ", ".join(f"{n} ({sources.get(n, DEFAULT).where})" for n in names)

    if opt.bf16 and opt.fp16:
        found.append(Problem(src("bf16", "fp16"), "bf16 and fp16 are both true; keep one "
                                                  "(bf16 on compute capability >= 8.0, fp16 on older GPUs)."))
    if train.warmup_ratio is not None and train.warmup_steps is not None:
        found.append(Problem(src("warmup_ratio", "warmup_steps"),
                             "warmup_ratio and warmup_steps are both set; keep one."))
    if model.load_in_4bit and model.load_in_8bit:
        found.append(Problem(src("load_in_4bit", "load_in_8bit"),
                             "load_in_4bit and load_in_8bit are both true; keep one."))
    if log.load_best_model_at_end:
        if log.eval_strategy == "no":
            found.append(Problem(src("load_best_model_at_end", "eval_strategy"),
                                 "load_best_model_at_end needs evaluations, but eval_strategy is \"no\". "
                                 "Set eval_strategy: steps, or load_best_model_at_end: false."))
        if log.save_strategy == "no":
            found.append(Problem(src("load_best_model_at_end", "save_strategy"),
                                 "load_best_model_at_end needs checkpoints, but save_strategy is \"no\". "
                                 "Set save_strategy to match eval_strategy, or load_best_model_at_end: false."))
        elif log.eval_strategy != "no" and log.save_strategy not in (log.eval_strategy, "best"):
            found.append(Problem(src("eval_strategy", "save_strategy"),
                                 f'load_best_model_at_end needs save_strategy to match eval_strategy '
                                 f'("{log.save_strategy}" vs "{log.eval_strategy}"). Make them the same.'))
        elif (log.eval_strategy == log.save_strategy == "steps" and log.eval_steps and log.save_steps
              and log.save_steps % log.eval_steps):
            found.append(Problem(src("eval_steps", "save_steps"),
                                 f"load_best_model_at_end needs save_steps ({log.save_steps}) to be a multiple of "
                                 f"eval_steps ({log.eval_steps}), so that every checkpoint has a score."))
    if data.head == "sequence" and data.task != "classification":
        found.append(Problem(src("head", "task"), f'head "sequence" classifies, but the task is "{data.task}". '
                                                  "Set task: classification, or head: lm."))
    if data.head == "sequence" and data.packing:
        found.append(Problem(src("head", "packing"), "a sequence head classifies each row on its own; packing "
                                                     "joins rows into one sequence. Set packing: false."))
    found.extend(_method_problems(cfg, src, sources))
    if data.labels is not None and (len(data.labels) < 2 or len(set(data.labels)) < len(data.labels)):
        found.append(Problem(src("labels"), "labels must name at least two different classes, each once."))
    if train.early_stopping_patience > 0 and log.eval_strategy == "no":
        found.append(Problem(src("early_stopping_patience", "eval_strategy"),
                             "early stopping needs evaluations, but eval_strategy is \"no\". "
                             "Set eval_strategy: steps, or early_stopping_patience: 0."))
    if log.eval_strategy != "no" and not data.validation_file and data.val_split == 0:
        found.append(Problem(src("eval_strategy", "val_split"),
                             "evaluation is on but there is no validation data: set validation_file, "
                             "val_split > 0, or eval_strategy: no."))
    if data.packing and data.group_by_length:
        found.append(Problem(src("packing", "group_by_length"), "packing and group_by_length are both true; keep one "
                                                                "(packing already leaves no padding)."))
    found.extend(_scheduler_problems(train, log, src))
    from lorawiz.config.integrations import hub_problems, tracking_problems

    found.extend(tracking_problems(log, src, Problem) + hub_problems(log, src, Problem))
    lora = cfg["lora"]
    for per, steps in (("evals_per_epoch", "eval_steps"), ("saves_per_epoch", "save_steps")):
        source = sources.get(steps, DEFAULT)
        if getattr(log, per) and getattr(log, steps) and (source.is_user or source.kind == "preset"):
            found.append(Problem(src(per, steps), f"{per} and {steps} are both set; keep one."))
    if data.datasets and data.train_file and sources.get("train_file", DEFAULT).kind != "derived":
        found.append(Problem(src("datasets", "train_file"), "datasets and train_file are both set; keep one "
                                                            "(datasets mixes several sources)."))
    found.extend(_datasets_problems(data.datasets or [], src))
    if lora.layers_to_transform and lora.lora_target_modules == "all-linear":
        found.append(Problem(src("layers_to_transform", "lora_target_modules"),
                             "layers_to_transform needs lora_target_modules as a list of names (peft cannot combine "
                             "it with all-linear), e.g. [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, "
                             "down_proj]."))
    if opt.cpu_offload and opt.parallelism == "ddp":
        found.append(Problem(src("cpu_offload", "parallelism"), "cpu_offload needs a sharded run: data parallel "
                                                                "keeps the whole model on every GPU. Use "
                                                                "parallelism: fsdp (or deepspeed), or cpu_offload: "
                                                                "false."))
    if model.load_in_8bit and opt.parallelism in ("fsdp", "deepspeed"):
        found.append(Problem(src("load_in_8bit", "parallelism"), f"{opt.parallelism} cannot shard bitsandbytes' "
                                                                 "8-bit weights (they are not floating point). Use "
                                                                 "load_in_4bit (4-bit weights shard), or "
                                                                 "parallelism: ddp."))
    if train.max_steps == 0:
        found.append(Problem(src("max_steps"), "max_steps 0 would train nothing: use -1 (no cap) or at least 1."))
    if log.greater_is_better and "loss" in log.metric_for_best_model:
        found.append(Problem(src("greater_is_better", "metric_for_best_model"),
                             f"greater_is_better is true but {log.metric_for_best_model} is a loss (lower is better)."))
    return found




def _method_problems(cfg: Any, src: Any, sources: Mapping[str, Source]) -> list[Problem]:
    """What a preference method cannot take: a sequence head, packing, a beta without one; KTO one row a
    micro-batch or length grouping; ORPO columns removed."""
    train, data = cfg["training"], cfg["data"]
    found = []
    if train.method == "sft":
        if train.beta is not None:
            found.append(Problem(src("beta", "method"), "beta is DPO's setting, but the method is sft. Set method: "
                                                        "dpo, or leave beta unset."))
        return found
    if data.head == "sequence":
        found.append(Problem(src("method", "head"), f"{train.method} tunes a language model's answers; a sequence "
                                                    "head has none. Use method: sft with head: sequence, or head: "
                                                    "lm."))
    if data.packing:
        found.append(Problem(src("method", "packing"), f"{train.method} compares whole answers pair by pair; packing "
                                                       "joins rows into one sequence. Set packing: false."))
    if train.method == "kto" and train.per_device_train_batch_size == 1:
        found.append(Problem(src("method", "per_device_train_batch_size"),
                             "kto estimates its KL term from the other answers of a micro-batch, so "
                             "per_device_train_batch_size must be at least 2 (TRL's KTOTrainer refuses 1)."))
    if (train.method == "orpo" and cfg["dataloader"].remove_unused_columns
            and sources.get("remove_unused_columns", DEFAULT).is_user):
        found.append(Problem(src("method", "remove_unused_columns"), "orpo's collator reads columns the model does "
                                                                     "not take (TRL's ORPOTrainer turns "
                                                                     "remove_unused_columns off). Set "
                                                                     "remove_unused_columns: false."))
    if train.method == "kto" and data.group_by_length:
        found.append(Problem(src("method", "group_by_length"), "kto pairs each answer with its micro-batch "
                                                               "neighbours' for its KL term, in a fixed order. Set "
                                                               "group_by_length: false."))
    return found
