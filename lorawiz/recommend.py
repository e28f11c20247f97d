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

from lorawiz.memory import GIB, MemoryBreakdown, TrainingShape, estimate_memory

MEMORY_BUDGET = 0.9  # plan to use at most 90% of the smallest GPU's free memory
SIXTEEN_BIT_MARGIN = 0.75  # 16-bit LoRA only when its leanest setting needs at most 75% of the budget
DEFAULT_SEQ_LEN = 2048
MAX_MICRO_BATCH = 16

# Assumed model-FLOPs utilisation of LoRA training, for the time estimate only: dense-16-bit LoRA reaches roughly
# a third of peak on recent GPUs, 4-bit QLoRA less (dequantisation on every matmul). Our assumption, to be
# replaced by measured figures (bench/).
MFU = {"none": 0.35, "nf4": 0.25, "nf4-dq": 0.25, "int8": 0.2}
CPU_FLOPS = 1e11  # ~100 GFLOP/s sustained in fp32 on a few cores: CPU training is for smoke tests only


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
    value: Any
    reason: str
    source: str = "recommender"  # or the layer the user's value came from: preset, file, flag, ...


@dataclass
class TimeEstimate:
    steps: int
    tokens: int
    seconds: float
    assumption: str


@dataclass
class Plan:
    values: dict[str, Choice] = field(default_factory=dict)
    memory: MemoryBreakdown | None = None
    budget_bytes: float = 0.0
    fits: bool = True
    warnings: list[str] = field(default_factory=list)
    alternative: str | None = None
    time: TimeEstimate | None = None

    def value(self, name: str) -> Any:
        return self.values[name].value


def steps_per_epoch(rows: int, effective_batch: int) -> int:
    return max(1, math.ceil(rows / effective_batch))


def warmup_ratio_for(total_steps: int) -> tuple[float, str]:
    """Short runs need proportionally more warmup (the issue's rule: 0.1 / 0.06 / 0.03)."""
    if total_steps < 1000:
        return 0.1, f"{total_steps:,} steps (< 1k): 10% warmup steadies the first updates"
    if total_steps <= 10_000:
        return 0.06, f"{total_steps:,} steps (1k-10k): 6% warmup"
    return 0.03, f"{total_steps:,} steps (> 10k): 3% warmup is plenty"


def rank_for(rows: int | None, task: str) -> tuple[int, str]:
    """Adapter rank: small data needs little capacity; domain adaptation needs more (Biderman et al. 2024,
    "LoRA Learns Less and Forgets Less": continued pre-training benefits from higher ranks)."""
    if task == "classification":
        return 8, "classification needs little capacity: rank 8"
    if rows is None:
        return 16, "no data statistics: rank 16, a common default"
    rank = 8 if rows < 1_000 else 16 if rows < 10_000 else 32 if rows < 100_000 else 64
    reason = f"{rows:,} rows: rank {rank}"
    if task == "domain":
        rank *= 2
        reason += f", doubled to {rank} for domain adaptation (new knowledge needs more capacity)"
    return rank, reason


def effective_batch_for(rows: int | None) -> int:
    """16 for small data (more updates per epoch), up to 64 for large data (smoother gradients)."""
    if rows is None or rows < 1_000:
        return 16
    return 32 if rows < 20_000 else 64


def epochs_for(rows: int | None) -> tuple[float, str]:
    if rows is None:
        return 1.0, "no data statistics: one epoch"
    if rows < 1_000:
        return 3.0, f"{rows:,} rows: 3 epochs (small data needs several passes)"
    if rows < 10_000:
        return 2.0, f"{rows:,} rows: 2 epochs"
    return 1.0, f"{rows:,} rows: one epoch is enough and avoids overfitting"


def dropout_for(rows: int | None) -> tuple[float, str]:
    if rows is not None and rows < 1_000:
        return 0.1, f"{rows:,} rows: dropout 0.1 against overfitting small data"
    if rows is not None and rows < 10_000:
        return 0.05, f"{rows:,} rows: light dropout 0.05"
    return 0.0, "large data: no dropout (it would only slow learning)"


def recommend(hardware: Any, model: Any, data: DataFacts | None = None, task: str = "chat",
              preset: Mapping[str, Any] | None = None, user: Mapping[str, tuple[Any, str]] | None = None,
              preset_name: str | None = None) -> Plan:
    """The plan for one run. `preset` holds the scenario's values; `user` maps knob -> (value, source label)."""
    data = data or DataFacts()
    plan = Plan()
    fixed: dict[str, Choice] = {}
    for name, value in (preset or {}).items():
        if value is not None:
            label = f"preset {preset_name}" if preset_name else "preset"
            fixed[name] = Choice(value, f"set by the {label}", label)
    for name, (value, source) in (user or {}).items():
        if value is not None:
            fixed[name] = Choice(value, "your value: it wins over the recommendation", source)

    def choose(name: str, value: Any, reason: str) -> Any:
        choice = fixed.get(name) or Choice(value, reason)
        plan.values[name] = choice
        return choice.value

    gpu = not hardware.is_cpu_only
    # Precision: bf16 needs compute capability 8.0 (Ampere); fp16 with loss scaling below; fp32 on CPU.
    if not gpu:
        bf16, fp16, why = False, False, "no GPU: fp32 on the CPU"
    elif hardware.supports_bf16:
        bf16, fp16, why = True, False, "compute capability >= 8.0: bf16 (no loss scaling needed)"
    else:
        bf16, fp16, why = False, True, "compute capability < 8.0 has no bf16: fp16 with loss scaling"
    bf16 = choose("bf16", bf16, why)
    fp16 = choose("fp16", fp16 and not bf16, "bf16 is used instead" if bf16 else why)
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
        budget = hardware.ram_bytes * MEMORY_BUDGET
    else:  # a CPU spec for another machine: its RAM is unknown, so nothing can be ruled out
        budget = math.inf
        plan.warnings.append("the target machine's RAM is unknown: the memory fit is not checked")
    plan.budget_bytes = budget

    def shape(quant: str, micro: int, ckpt: bool) -> TrainingShape:
        return TrainingShape(precision=precision, quantization=quant, lora_r=rank, target_modules=targets,
                             optimizer=optim, micro_batch=micro, seq_len=seq_len, gradient_checkpointing=ckpt,
                             lora_dropout=dropout, on_gpu=gpu)

    quant = _choose_quantization(model, shape, budget, gpu, fixed, plan, choose)
    target_batch = effective_batch_for(data.rows)
    devices = max(1, hardware.gpu_count)
    micro, ckpt = _choose_micro_batch(model, shape, quant, budget, max(1, target_batch // devices), fixed)
    micro = choose("per_device_train_batch_size", micro, "largest micro-batch (up to the effective batch) that "
                                                          "fits in 90% of the free memory")
    ckpt = choose("gradient_checkpointing", ckpt, "needed to fit" if ckpt else "not needed to fit: off (~30% faster)")
    choose("per_device_eval_batch_size", micro, "same as the training micro-batch")
    accum = choose("gradient_accumulation_steps", max(1, math.ceil(target_batch / (micro * devices))),
                   f"effective batch {target_batch} = micro-batch {micro} x {devices} device(s) x accumulation")
    effective = micro * devices * accum

    kind = "QLoRA (4-bit)" if quant != "none" else "16-bit LoRA"
    lr, lr_why = 2e-4, (f"{kind}: 2e-4, the QLoRA paper's rate up to 13B; it found 16-bit LoRA and QLoRA match "
                        "at the same rate (Dettmers et al. 2023)")
    if model.parameters()["total"] > 30e9:
        lr, lr_why = 1e-4, f"{kind}, over 30B parameters: 1e-4 (the QLoRA paper's rate for 33B and 65B)"
    if rank >= 64:
        lr, lr_why = lr / 2, f"rank {rank}: {lr / 2:g}, half the usual rate, since alpha = 2r makes large-rank " \
                             "updates bigger"
    choose("learning_rate", lr, lr_why)
    epochs = choose("num_train_epochs", *epochs_for(data.rows))
    choose("lr_scheduler_type", "cosine", "cosine decay: the common choice for LoRA fine-tuning")
    rows = data.rows or 0
    per_epoch = steps_per_epoch(rows, effective) if rows else 0
    total_steps = max(1, math.ceil(per_epoch * float(epochs))) if rows else 0
    if rows:
        choose("warmup_ratio", *warmup_ratio_for(total_steps))
        eval_steps = max(1, math.ceil(per_epoch / 8))
        choose("eval_steps", eval_steps, f"{per_epoch:,} steps an epoch: about 8 evaluations an epoch")
        choose("save_steps", plan.values["eval_steps"].value, "on the evaluation schedule (keeps the best)")
        choose("logging_steps", max(1, min(10, eval_steps // 2)), "several points between evaluations")
    else:
        choose("warmup_ratio", 0.03, "no data statistics: 3% warmup")
    packing = choose("packing", False, "off: each row is trained on its own, so every loss covers one conversation")
    if packing:
        choose("group_by_length", False, "off: packing already leaves no padding")
    else:
        choose("group_by_length", True, "on: rows of similar length share a batch, so batches carry little padding "
                                        "(9% instead of 60%: 2.2x real tokens/s in bench/train_speed.py)")

    final = shape(quant, micro, bool(ckpt))
    plan.memory = estimate_memory(model, final)
    plan.fits = plan.memory.total <= budget
    if not plan.fits:
        plan.warnings.append(f"predicted peak {plan.memory.total / GIB:.1f} GiB is over the budget of "
                             f"{budget / GIB:.1f} GiB (90% of free memory)")
        plan.alternative = _cheapest_fix(model, shape, budget, quant, hardware)
    plan.time = estimate_time(model, hardware, data, final, total_steps, effective)
    return plan


def _seq_len(data: DataFacts, model: Any) -> tuple[int, str]:
    limit = model.context_length
    if data.suggested_max_seq_length:
        value = min(data.suggested_max_seq_length, limit)
        how = "estimated" if data.estimated else "measured"
        return value, f"from the data's {how} lengths (p95 {data.p95:,}, p99 {data.p99:,})" + (
            f"; capped at the model's {limit:,}" if value == limit else "")
    return min(DEFAULT_SEQ_LEN, limit), f"no data statistics: {min(DEFAULT_SEQ_LEN, limit):,}"


def _choose_quantization(model, shape, budget, gpu, fixed, plan, choose) -> str:
    if "load_in_4bit" in fixed:
        quant = "nf4-dq" if fixed["load_in_4bit"].value else "none"
        plan.values["load_in_4bit"] = fixed["load_in_4bit"]
        return quant  # bitsandbytes >= 0.50 quantises on the CPU too
    if not gpu:
        choose("load_in_4bit", False, "no GPU: full precision (4-bit on the CPU saves memory but is slow)")
        return "none"
    lean = estimate_memory(model, shape("none", 1, True)).total
    if lean <= budget * SIXTEEN_BIT_MARGIN:
        choose("load_in_4bit", False, f"16-bit LoRA fits with margin ({lean / GIB:.1f} GiB at its leanest)")
        return "none"
    choose("load_in_4bit", True, f"16-bit LoRA would need {lean / GIB:.1f} GiB at its leanest: 4-bit QLoRA")
    return "nf4-dq"


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


def _cheapest_fix(model, shape, budget, quant, hardware) -> str:
    """The smallest change that would fit: shorter sequences, then 4-bit, then a bigger GPU."""
    base = shape(quant, 1, True)
    if quant == "none" and estimate_memory(model, shape("nf4-dq", 1, True)).total <= budget:
        return "load the model in 4 bits (--set load_in_4bit=true)"
    seq = base.seq_len
    while seq > 256:
        seq //= 2
        trial = TrainingShape(**{**base.__dict__, "seq_len": seq, "quantization": "nf4-dq"})
        if estimate_memory(model, trial).total <= budget:
            return f"shorter sequences: --max-seq-length {seq} fits in 4 bits"
    need = estimate_memory(model, TrainingShape(**{**base.__dict__, "quantization": "nf4-dq"})).total
    smaller = _largest_fitting_sibling(model, base, budget)
    return (f"a GPU with at least {need / MEMORY_BUDGET / GIB:.0f} GiB free (one GPU must hold the whole model; "
            "more GPUs of this size do not help), or a smaller model" + (f" such as {smaller}" if smaller else ""))


def _largest_fitting_sibling(model: Any, base: TrainingShape, budget: float) -> str | None:
    """The largest catalog model of the same architecture that fits in 4 bits at micro-batch 1."""
    from lorawiz.catalog import CATALOG  # plain data; imported here to keep the recommender's inputs explicit

    trial = TrainingShape(**{**base.__dict__, "quantization": "nf4-dq"})
    fitting = [m for m in CATALOG if m.architecture == model.architecture
               and m.parameters()["total"] < model.parameters()["total"]
               and estimate_memory(m, trial).total <= budget]
    return max(fitting, key=lambda m: m.parameters()["total"]).name if fitting else None


def estimate_time(model: Any, hardware: Any, data: DataFacts, shape: TrainingShape, steps: int,
                  effective_batch: int) -> TimeEstimate | None:
    """Wall-clock time from peak throughput and an assumed utilisation: an estimate, labelled as one.

    LoRA with a frozen base costs ~4N FLOPs a token (forward 2N, backward through activations 2N, no weight
    gradients; Kaplan et al. 2020 count 6N for full training), plus 2N more when checkpointing recomputes the
    forward pass.
    """
    if not data.rows or not data.mean_tokens:
        return None
    tokens = int(steps * effective_batch * (shape.seq_len if shape.micro_batch > 1 else data.mean_tokens))
    per_token = (6 if shape.gradient_checkpointing else 4) * model.parameters()["total"]
    if hardware.is_cpu_only:
        flops, assumption = CPU_FLOPS, "CPU at ~100 GFLOP/s"
    else:
        peak = min((g.peak_tflops_bf16 or 0) for g in hardware.gpus) * 1e12
        if not peak:
            return TimeEstimate(steps, tokens, 0.0, "unknown GPU peak throughput: no time estimate")
        mfu = MFU.get(shape.quantization, 0.25)
        flops = peak * mfu * hardware.gpu_count
        assumption = f"{hardware.gpu_count} GPU(s) at {mfu:.0%} of {peak / 1e12:.0f} TFLOP/s peak"
    return TimeEstimate(steps, tokens, tokens * per_token / flops, f"estimate: {assumption}; "
                        "padded micro-batches count as full length")
