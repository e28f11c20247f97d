"""Every training hyperparameter from hardware, model, data, task and scenario, each with a one-line reason.

Pure: plain data in (a HardwareProfile, ModelFacts, DataFacts, the preset's values and the user's), plain data
out (a Plan). Values the user set always win; the recommender then re-checks the fit and says what will not fit.
Rules of thumb are marked where they come from; the memory side is lorawiz.memory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lorawiz.fitting import MEMORY_BUDGET, cheapest_fix
from lorawiz.lora_size import adapted_layer_count
from lorawiz.memory import GIB, MemoryBreakdown, TrainingShape, estimate_memory, loss_for
from lorawiz.methods import forward_passes_without_gradients, method_choices, rows_per_example, sequences_per_row
from lorawiz.parallelism import UNVERIFIED_SHARDED_4BIT, Layout, candidates, choose_layout
from lorawiz.rules import dropout_for, effective_batch_for, epochs_for, rank_for, warmup_ratio_for
from lorawiz.throughput import TimeEstimate, estimate_time

SIXTEEN_BIT_MARGIN = 0.75  # 16-bit LoRA only when its leanest setting needs at most 75% of the budget
DEFAULT_SEQ_LEN = 2048
MAX_MICRO_BATCH = 16


@dataclass(frozen=True)
class DataFacts:
    """What the recommender needs to know of the data (as `lorawiz inspect` measures it)."""

    rows: int | None = None
    mean_tokens: float | None = None
    p95: int | None = None
    p99: int | None = None
    max_tokens: int | None = None
    suggested_max_seq_length: int | None = None
    estimated: bool = True  # lengths from characters, not a tokenizer

    @classmethod
    def from_stats(cls, stats: Any) -> DataFacts:
        length = stats.length
        return cls(rows=stats.rows, mean_tokens=length.mean, p95=length.p95, p99=length.p99, max_tokens=length.max,
                   suggested_max_seq_length=stats.suggested_max_seq_length, estimated=length.unit != "tokens")


@dataclass
class Choice:
    """One planned value, why, and where it came from (`source` is a lorawiz.config.layers.Source)."""

    value: Any
    reason: str
    source: Any = None  # None: the recommender's own choice
    # A preset's value where the recommender would choose another: (its value, its reason), said in the plan
    alternative: tuple[Any, str] | None = None

    @property
    def by_recommender(self) -> bool:
        return self.source is None


@dataclass
class Plan:
    values: dict[str, Choice] = field(default_factory=dict)
    memory: MemoryBreakdown | None = None
    budget_bytes: float = 0.0
    fits: bool = True
    warnings: list[str] = field(default_factory=list)
    alternative: str | None = None
    time: TimeEstimate | None = None
    steps: int = 0  # optimizer steps of the whole run (0: no data statistics)
    steps_per_epoch: int = 0
    train_rows: int = 0  # rows trained on, after the validation hold-out
    effective_batch: int = 0  # rows per optimizer step, all devices together
    devices: int = 1  # GPUs (or processes) the batch is shared among
    layout: Layout = field(default_factory=Layout)  # how the GPUs and machines share the run
    host_bytes: float = 0.0  # CPU RAM a machine needs for the model (sharded loading, offloading)
    notes: list[str] = field(default_factory=list)  # facts worth printing that are not warnings

    def value(self, name: str) -> Any:
        return self.values[name].value


def steps_per_epoch(rows: int, effective_batch: int) -> int:
    return max(1, math.ceil(rows / effective_batch))


def held_out_rows(rows: int, settings: Mapping[str, Any]) -> int:
    """Rows the run holds out for validation: val_split of the training file when there is no validation file
    (the same count lorawiz.data.rows.holdout_split aims for)."""
    if settings.get("validation_file") or settings.get("eval_strategy", "steps") == "no":
        return 0
    ratio = float(settings.get("val_split", 0.1) or 0)
    return max(1, round(rows * ratio)) if ratio > 0 and rows else 0


def total_steps(rows: int, effective_batch: int, epochs: float, max_steps: int) -> tuple[int, int]:
    """Optimizer steps of the run and of one epoch: epochs x steps an epoch, capped at max_steps when it is set
    (as transformers counts them: an epoch's last partial batch is a step)."""
    per_epoch = steps_per_epoch(rows, effective_batch)
    steps = max(1, math.ceil(per_epoch * float(epochs)))
    return (min(steps, max_steps) if max_steps > 0 else steps), per_epoch


def recommend(hardware: Any, model: Any, data: DataFacts | None = None, task: str = "chat",
              given: Mapping[str, Choice] | None = None, settings: Mapping[str, Any] | None = None) -> Plan:
    """The plan for one run.

    `given` holds the values a preset or the user set (they win; the fit is re-checked with them); `settings`
    holds the configuration's other values the plan depends on (eval_strategy, max_steps, val_split, ...).
    """
    data = data or DataFacts()
    settings = settings or {}
    plan = Plan()
    fixed = {name: choice for name, choice in (given or {}).items() if choice.value is not None}
    method = settings.get("method", "sft")
    by_method = method_choices(method, data.rows)  # what DPO decides otherwise (lorawiz.methods)

    def choose(name: str, value: Any, reason: str) -> Any:
        value, reason = by_method.get(name, (value, reason))
        choice = fixed.get(name) or Choice(value, reason)
        if (choice.source is not None and choice.source.kind == "preset" and value is not None
                and choice.value != value):
            choice = Choice(choice.value, choice.reason, choice.source, alternative=(value, reason))
        plan.values[name] = choice
        return choice.value

    gpu = not hardware.is_cpu_only
    bf16, fp16 = _choose_precision(hardware, fixed, choose)
    precision = "bf16" if bf16 else "fp16" if fp16 else "fp32"

    seq_len = _seq_len(data, model)
    seq_len = choose("max_seq_length", *seq_len)
    rank = choose("lora_r", *rank_for(data.rows, task))
    choose("lora_alpha", 2 * rank, f"2 x rank ({2 * rank}): the usual LoRA scaling")
    dropout = choose("lora_dropout", *dropout_for(data.rows))
    targets = choose("lora_target_modules", "all-linear", "every linear layer: the QLoRA paper found adapters on all "
                                                          "layers are needed to match full fine-tuning")
    optim = choose("optim", "paged_adamw_8bit" if gpu else "adamw_torch",
                   "CUDA: paged 8-bit AdamW (a quarter of the optimizer memory, survives spikes)" if gpu
                   else "no GPU: plain AdamW (8-bit optimizers need CUDA)")

    if gpu:
        budget = hardware.smallest_gpu_free_bytes * MEMORY_BUDGET
    elif hardware.ram_bytes:
        budget = hardware.ram_bytes * MEMORY_BUDGET / hardware.cpu_processes  # the processes share the RAM
    else:  # a CPU spec for another machine: its RAM is unknown, so nothing can be ruled out
        budget = math.inf
        plan.warnings.append("the target machine's RAM is unknown: the memory fit is not checked")
    plan.budget_bytes = budget

    adapted = adapted_layer_count(settings.get("layers_to_transform"))

    def shape(quant: str, micro: int, ckpt: bool, layout: Layout | None = None) -> TrainingShape:
        return TrainingShape(precision=precision, quantization=quant, lora_r=rank, target_modules=targets,
                             optimizer=optim, micro_batch=micro, seq_len=seq_len, gradient_checkpointing=ckpt,
                             lora_dropout=dropout, on_gpu=gpu, adapted_layers=adapted, loss=loss_for(settings),
                             sequences=sequences_per_row(method),
                             passes_without_gradients=forward_passes_without_gradients(method),
                             **(layout or plan.layout).shape_fields())

    ram_budget = hardware.ram_bytes * MEMORY_BUDGET if hardware.ram_bytes else None
    quant = _choose_layout(model, hardware, shape, budget, ram_budget, fixed, plan, choose)
    rows = data.rows or 0
    # KTO learns each answer of a pair as a row of its own (lorawiz.methods)
    train_rows = (rows - held_out_rows(rows, settings)) * rows_per_example(method) if rows else 0
    target_batch = effective_batch_for(train_rows or None)
    devices = plan.layout.world
    micro, ckpt = _choose_micro_batch(model, shape, quant, budget, max(1, target_batch // devices), fixed)
    micro = choose("per_device_train_batch_size", micro, "largest micro-batch (up to the effective batch) that "
                                                          "fits in 90% of the free memory")
    ckpt = choose("gradient_checkpointing", ckpt, "needed to fit" if ckpt else "not needed to fit: off (~30% faster)")
    choose("per_device_eval_batch_size", micro, "same as the training micro-batch")
    accum = choose("gradient_accumulation_steps", max(1, math.ceil(target_batch / (micro * devices))),
                   f"effective batch {target_batch} = micro-batch {micro} x {devices} device(s) x accumulation")
    effective = micro * devices * accum
    plan.effective_batch, plan.devices = effective, devices

    kind = "QLoRA (4-bit)" if quant != "none" else "16-bit LoRA"
    lr, lr_why = 2e-4, (f"{kind}: 2e-4, the QLoRA paper's rate up to 13B; it found 16-bit LoRA and QLoRA match "
                        "at the same rate (Dettmers et al. 2023)")
    if model.parameters()["total"] > 30e9:
        lr, lr_why = 1e-4, f"{kind}, over 30B parameters: 1e-4 (the QLoRA paper's rate for 33B and 65B)"
    if rank >= 64:
        lr, lr_why = lr / 2, f"rank {rank}: {lr / 2:g}, half the usual rate, since alpha = 2r makes large-rank " \
                             "updates bigger"
    choose("learning_rate", lr, lr_why)
    for name in ("beta", "remove_unused_columns"):  # a method's own values (lorawiz.methods)
        if name in by_method:
            choose(name, *by_method[name])
    epochs = choose("num_train_epochs", *epochs_for(train_rows or None))
    choose("lr_scheduler_type", "cosine", "cosine decay: the common choice for LoRA fine-tuning")
    max_steps = int(settings.get("max_steps", -1))
    steps, per_epoch = total_steps(train_rows, effective, epochs, max_steps) if train_rows else (0, 0)
    plan.steps, plan.steps_per_epoch, plan.train_rows = steps, per_epoch, train_rows
    if train_rows and max_steps > 0:
        plan.notes.append(f"max_steps {max_steps:,} ends the run first: {steps:,} of the "
                          f"{math.ceil(per_epoch * float(epochs)):,} steps of {float(epochs):g} epoch(s)"
                          if steps == max_steps else
                          f"max_steps {max_steps:,} is not reached: {float(epochs):g} epoch(s) end first, at "
                          f"{steps:,} steps")
    _choose_schedule(plan, choose, fixed, settings, steps, per_epoch, rows=train_rows)
    packing = choose("packing", False, "off: each row is trained on its own, so every loss covers one conversation")
    if packing:
        choose("group_by_length", False, "off: packing already leaves no padding")
    else:
        choose("group_by_length", True, "on: rows of similar length share a batch, so batches carry little padding "
                                        "(9% instead of 60%: 2.2x real tokens/s in bench/train_speed.py)")

    if method == "dpo":
        plan.notes.append(f"DPO: a micro-batch of {micro:,} pairs puts {2 * micro:,} sequences through the model "
                          "(each chosen and rejected answer), and the reference's forward pass over them ("
                          + ("from_adapter's frozen copy" if settings.get("from_adapter") else "the adapter off")
                          + ", no gradients); memory and time count both")
    if method == "orpo":
        plan.notes.append(f"ORPO (TRL's experimental ORPOTrainer): a micro-batch of {micro:,} pairs puts "
                          f"{2 * micro:,} sequences through the model; no reference model: the SFT loss on the "
                          "chosen answer plus the odds-ratio term")
    if method == "kto":
        plan.notes.append("KTO: each pair is two rows, its chosen answer desirable and its rejected one not; each "
                          "row also goes through the reference, and a neighbour's answer through both for the KL "
                          "term (no gradients); memory and time count them")
    final = shape(quant, micro, bool(ckpt))
    plan.memory = estimate_memory(model, final)
    plan.fits = plan.memory.total <= budget
    if not plan.fits:
        plan.warnings.append(f"predicted peak {plan.memory.total / GIB:.1f} GiB is over the budget of "
                             f"{budget / GIB:.1f} GiB (90% of free memory)")
        plan.alternative = cheapest_fix(model, final, budget)
    plan.time = estimate_time(model, hardware, data, final, steps, effective)
    return plan


def _choose_precision(hardware: Any, fixed: Mapping[str, Choice], choose: Any) -> tuple[bool, bool]:
    """bf16 needs compute capability 8.0 (Ampere); fp16 with loss scaling below; fp32 on CPU. A precision the user
    sets turns the other one off."""
    if "fp16" in fixed and "bf16" not in fixed and fixed["fp16"].value:
        bf16 = choose("bf16", False, f"off: fp16 is set ({fixed['fp16'].source})")
        return bf16, choose("fp16", True, "")
    if "bf16" in fixed and "fp16" not in fixed:
        bf16 = choose("bf16", None, "")
        return bf16, choose("fp16", False, "off: bf16 is set" if bf16 else
                            f"off: bf16 is turned off ({fixed['bf16'].source}), so full fp32")
    if hardware.is_cpu_only:
        bf16, fp16, why = False, False, "no GPU: fp32 on the CPU"
    elif hardware.supports_bf16:
        bf16, fp16, why = True, False, "compute capability >= 8.0: bf16 (no loss scaling needed)"
    else:
        bf16, fp16, why = False, True, "compute capability < 8.0 has no bf16: fp16 with loss scaling"
    bf16 = choose("bf16", bf16, why)
    fp16 = choose("fp16", fp16 and not bf16, "off: bf16 is used instead" if bf16 else why)
    return bf16, fp16


def _choose_schedule(plan: Plan, choose: Any, fixed: Mapping[str, Choice], settings: Mapping[str, Any],
                     steps: int, per_epoch: int, rows: int) -> None:
    """Warm-up, evaluation, checkpoint and logging steps from the run's real step count."""
    if "warmup_steps" in fixed:
        plan.values["warmup_steps"] = fixed["warmup_steps"]
    elif rows:
        choose("warmup_ratio", *warmup_ratio_for(steps))
    else:
        choose("warmup_ratio", 0.03, "no data statistics: 3% warmup")
    if not rows:
        return
    span = min(per_epoch, steps)  # what "an epoch" means for the schedule when max_steps ends the run earlier
    target = max(1, math.ceil(span / 8))
    where = f"{per_epoch:,} steps an epoch" if span == per_epoch else f"{steps:,} steps in the run"
    evaluating = settings.get("eval_strategy", "steps") == "steps"
    saving = settings.get("save_strategy", "steps") == "steps"
    best = bool(settings.get("load_best_model_at_end", True)) and evaluating
    per_eval, per_save = settings.get("evals_per_epoch"), settings.get("saves_per_epoch")
    if evaluating:
        if per_eval and "eval_steps" not in fixed:
            eval_steps = choose("eval_steps", max(1, math.ceil(per_epoch / per_eval)),
                                f"evals_per_epoch {per_eval} of {per_epoch:,} steps an epoch")
        elif best and saving and "save_steps" in fixed and "eval_steps" not in fixed:
            save = int(fixed["save_steps"].value)
            eval_steps = max(d for d in range(1, min(save, target) + 1) if save % d == 0)
            choose("eval_steps", eval_steps, f"a divisor of save_steps {save} near {target} (about 8 evaluations "
                                             "a run), so that every checkpoint has a score for the best model")
        else:
            eval_steps = choose("eval_steps", target, f"{where}: about 8 evaluations")
        if saving and per_save:
            every = max(1, round(per_epoch / per_save / eval_steps)) * eval_steps
            choose("save_steps", every, f"saves_per_epoch {per_save}, on an evaluation step (keeps the best)")
        elif saving:
            choose("save_steps", eval_steps, "on the evaluation schedule (keeps the best)")
    elif saving and per_save:
        choose("save_steps", max(1, math.ceil(per_epoch / per_save)), f"saves_per_epoch {per_save} of "
                                                                      f"{per_epoch:,} steps an epoch")
    elif saving:
        choose("save_steps", target, f"{where}: about 8 checkpoints")
    logging_basis = plan.values["eval_steps"].value if "eval_steps" in plan.values else target
    choose("logging_steps", max(1, min(10, logging_basis // 2)), "several points between evaluations")


def _seq_len(data: DataFacts, model: Any) -> tuple[int, str]:
    limit = model.context_length
    if data.suggested_max_seq_length:
        value = min(data.suggested_max_seq_length, limit)
        how = "estimated" if data.estimated else "measured"
        return value, f"from the data's {how} lengths (p95 {data.p95:,}, p99 {data.p99:,})" + (
            f"; capped at the model's {limit:,}" if value == limit else "")
    return min(DEFAULT_SEQ_LEN, limit), f"no data statistics: {min(DEFAULT_SEQ_LEN, limit):,}"


def _choose_layout(model, hardware, shape, budget, ram_budget, fixed, plan, choose) -> str:
    """The parallelism, CPU offload and quantization together (lorawiz.parallelism gives the order of preference):
    sets plan.layout and returns the quantization."""
    machines, per_machine = max(1, hardware.machines), max(1, hardware.gpu_count or hardware.cpu_processes)
    given_parallelism = fixed["parallelism"].value if "parallelism" in fixed else None
    given_offload = fixed["cpu_offload"].value if "cpu_offload" in fixed else None
    eight_bit = "load_in_8bit" in fixed and fixed["load_in_8bit"].value
    if eight_bit:
        quants = ("int8",)
        choose("load_in_4bit", False, f"off: 8-bit is set ({fixed['load_in_8bit'].source})")
    elif "load_in_4bit" in fixed:
        quants = ("nf4-dq",) if fixed["load_in_4bit"].value else ("none",)
        plan.values["load_in_4bit"] = fixed["load_in_4bit"]  # bitsandbytes >= 0.50 quantises on the CPU too
    else:
        quants = ("none", "nf4-dq") if not hardware.is_cpu_only else ("none",)
    if hardware.is_cpu_only:
        plan.layout = Layout(given_parallelism or "ddp", bool(given_offload), machines, per_machine)
        choose("parallelism", "ddp", "no GPU: the processes share the batch (data parallel)")
        choose("cpu_offload", False, "no GPU: nothing to offload")
        if "load_in_4bit" not in plan.values:
            choose("load_in_4bit", False, "no GPU: full precision (4-bit on the CPU saves memory but is slow)")
        return quants[0]
    order = candidates(given_parallelism or ("ddp" if eight_bit else None), quants, machines, per_machine)
    if given_offload is not None:
        order = [(layout, quant) for layout, quant in order if layout.offload == given_offload] or [
            (Layout(given_parallelism or "fsdp", True, machines, per_machine), quant) for quant in quants]
    found, why, tried = choose_layout(model, lambda layout, quant: shape(quant, 1, True, layout),
                                      lambda trial: estimate_memory(model, trial).total, budget, ram_budget, order,
                                      lambda quant: SIXTEEN_BIT_MARGIN if quant == "none" and len(quants) > 1
                                      else 1.0)
    plan.layout, plan.host_bytes = found.layout, found.host
    choose("parallelism", found.layout.parallelism, why)
    choose("cpu_offload", found.layout.offload, "the model fits the GPUs only with it" if found.layout.offload else
           "data parallel: every GPU holds the model" if found.layout.parallelism == "ddp" else "not needed to fit")
    if found.layout.sharding != "none" and found.quantization != "none":
        plan.warnings.append(UNVERIFIED_SHARDED_4BIT.format(found.layout.parallelism))
    if found.layout.sharding != "none":
        plan.notes.append(f"CPU RAM: {found.host / GIB:,.0f} GiB a machine for the model ({found.host_formula})")
    if "load_in_4bit" not in plan.values:
        sixteen = [c.need for c in tried if c.quantization == "none"]
        lean = min(sixteen) if sixteen else found.need
        where = " a GPU" if found.layout.world > 1 else ""
        if found.quantization == "none":
            choose("load_in_4bit", False, f"16-bit LoRA fits with margin ({lean / GIB:.1f} GiB{where} at its "
                                          "leanest)")
        else:
            choose("load_in_4bit", True, f"16-bit LoRA would need {lean / GIB:.1f} GiB{where} at its leanest: "
                                         f"4-bit QLoRA ({found.need / GIB:.1f} GiB" + (
                                             ", as its experts are not Linear layers and stay 16-bit"
                                             if model.is_moe else "") + ")")
    return found.quantization


def _choose_micro_batch(model, shape, quant, budget, per_device_batch, fixed) -> tuple[int, bool]:
    """Gradient checkpointing only when needed: the largest micro-batch without it, else the largest with it.

    The micro-batch never exceeds one device's share of the effective batch, so that several GPUs do not
    overshoot it."""
    ceiling = min(MAX_MICRO_BATCH, per_device_batch)
    user_micro = fixed.get("per_device_train_batch_size")
    user_ckpt = fixed.get("gradient_checkpointing")
    micros = [user_micro.value] if user_micro else [2**i for i in range(int(math.log2(ceiling)), -1, -1)]
    modes = [bool(user_ckpt.value)] if user_ckpt else [False, True]
    for ckpt in modes:
        for micro in micros:
            if estimate_memory(model, shape(quant, micro, ckpt)).total <= budget:
                return micro, ckpt
    return micros[-1], modes[-1]
