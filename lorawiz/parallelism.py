"""How a run spreads over several GPUs and machines: data parallel, FSDP full-shard or DeepSpeed ZeRO-3, with or
without offloading to CPU RAM, and the CPU RAM each machine needs for it. Pure, like lorawiz.recommend.

The order of preference, for `parallelism: auto`: data parallel whenever the model fits one GPU (nothing to
gather, the least communication); else FSDP, which divides the weights, adapters and optimizer states among all
GPUs; else FSDP offloading them to CPU RAM (the published 70B-on-2x24GB recipe); and DeepSpeed ZeRO-3 where FSDP
cannot serve: when FSDP's loading would need more CPU RAM than a machine has (4-bit weights are loaded whole by
every process under FSDP; ZeRO-3 partitions them as they load).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from lorawiz.memory import (
    DTYPE_BYTES,
    GIB,
    TrainingShape,
    adapter_bytes,
    estimate_memory,
    lora_parameters,
    optimizer_bytes,
    weight_bytes,
)

PARALLELISMS = ("ddp", "fsdp", "deepspeed")
# On CPU processes (tests/integration/test_fsdp.py) FSDP2 and ZeRO-3 with 4-bit weights follow data parallel's
# loss curve (within 3e-4 and 3e-3 over 6 steps on builtin:tiny), but lorawiz has not run them on a GPU, where
# bitsandbytes' kernels differ: the plan says so rather than promise it.
UNVERIFIED_SHARDED_4BIT = ("{} with 4-bit weights is not verified on GPUs by lorawiz yet (its tests run FSDP and "
                           "ZeRO-3 with 4-bit weights on CPU processes, where they follow data parallel's loss "
                           "curve); watch the first evaluations, or use 16-bit LoRA on more GPUs")
SHARDING_OF = {"ddp": "none", "fsdp": "fsdp", "deepspeed": "zero3"}
NAMES = {"ddp": "data parallel", "fsdp": "FSDP full-shard", "deepspeed": "DeepSpeed ZeRO-3"}


@dataclass(frozen=True)
class Layout:
    """Where a run's processes are and how they share the model."""

    parallelism: str = "ddp"
    offload: bool = False
    machines: int = 1
    per_machine: int = 1  # processes (GPUs) on each machine

    @property
    def world(self) -> int:
        return self.machines * self.per_machine

    @property
    def sharding(self) -> str:
        return SHARDING_OF[self.parallelism]

    def shape_fields(self) -> dict[str, object]:
        """The TrainingShape fields this layout sets."""
        sharded = self.sharding != "none"
        return {"sharding": self.sharding, "shards": self.world if sharded else 1, "offload": sharded and self.offload}


def host_memory_bytes(model: object, shape: TrainingShape, processes_per_machine: int = 1, machines: int = 1
                      ) -> tuple[float, str]:
    """CPU RAM one machine needs for the model: while it loads, and, offloaded, while it trains.

    Data parallel loads straight onto each GPU. FSDP with 16-bit weights loads the whole model on each machine's
    first process only (cpu_ram_efficient_loading; the others get pages of zeros that are never touched,
    transformers modeling_utils); 4-bit weights are loaded, quantized, by every process, since neither transformers
    nor accelerate put quantized weights through the efficient path (fsdp2_prepare_model's Params4bit case).
    ZeRO-3 partitions the model as it loads (zero.Init). Offloading adds this machine's share of the parameters,
    adapter gradients and optimizer states. Checked against PEFT's FSDP+QLoRA guide (70B on 2 GPUs, offloaded:
    "CPU RAM usage is around 107 GB"; this gives 2 x 36.9 + 37.6 = 111 GiB)."""
    weights, _ = weight_bytes(model, shape)
    whole = model.parameters()["total"] * DTYPE_BYTES[shape.precision]
    if shape.sharding == "none":
        need, how = 0.0, "each process loads straight onto its GPU"
    elif shape.sharding == "fsdp" and not shape.quantized:
        need, how = whole, "the first process loads the whole model in 16 bits, then FSDP shards it"
    elif shape.sharding == "fsdp":
        need = processes_per_machine * weights
        how = f"each of the {processes_per_machine} processes loads the 4-bit model before FSDP shards it"
    else:
        need, how = weights / machines, "ZeRO-3 partitions the model as it loads"
    if shape.offload:
        trainable = lora_parameters(model, shape.lora_r, shape.target_modules, shape.adapted_layers)
        state = (weights + trainable * adapter_bytes(shape) * 2 + optimizer_bytes(shape, trainable)[0]) / machines
        need += state
        how += f", and {state / GIB:.1f} GiB of offloaded weights, gradients and optimizer states"
    return need, how


@dataclass(frozen=True)
class Candidate:
    layout: Layout
    quantization: str
    need: float  # GPU bytes at micro-batch 1 with gradient checkpointing
    host: float  # CPU RAM bytes a machine needs
    host_formula: str


def candidates(given: str | None, quantizations: tuple[str, ...], machines: int, per_machine: int,
               ) -> list[tuple[Layout, str]]:
    """The layouts and quantizations to try, in the order of preference of the module docstring."""
    world = machines * per_machine
    parallelisms = [given] if given else ["ddp", "fsdp"] if world > 1 else ["ddp"]
    order: list[tuple[Layout, str]] = []
    for quant in quantizations:  # 16-bit before 4-bit: 16-bit LoRA is the better adapter where it fits
        for parallelism in parallelisms:
            order.append((Layout(parallelism, False, machines, per_machine), quant))
    for quant in reversed(quantizations):  # offloading: the leanest first
        for parallelism in parallelisms:
            if parallelism != "ddp":
                order.append((Layout(parallelism, True, machines, per_machine), quant))
    return order


def choose_layout(model: object, shape_for: Callable[[Layout, str], TrainingShape], memory_of: Callable,
                  budget: float, ram_budget: float | None, order: list[tuple[Layout, str]],
                  margin: Callable[[str], float]) -> tuple[Candidate, str, list[Candidate]]:
    """The first candidate of `order` that fits the GPUs (within `margin(quant)` of the budget) and, where the
    machine's RAM is known, its RAM; FSDP refused for RAM alone is retried as ZeRO-3. Returns the choice, why, and
    every candidate tried (the leanest is the choice when nothing fits)."""
    tried: list[Candidate] = []
    for layout, quant in order:
        for option in ([layout, Layout("deepspeed", layout.offload, layout.machines, layout.per_machine)]
                       if layout.parallelism == "fsdp" else [layout]):
            shape = shape_for(option, quant)
            host, host_formula = host_memory_bytes(model, shape, option.per_machine, option.machines)
            found = Candidate(option, quant, memory_of(shape), host, host_formula)
            tried.append(found)
            if found.need > budget * margin(quant):
                break  # ZeRO-3 needs as much GPU memory as FSDP: no use trying it
            if ram_budget is not None and host > ram_budget:
                continue  # FSDP's loading needs more RAM than the machine has: ZeRO-3 next
            return found, _reason(found, tried, ram_budget), tried
    leanest = min(tried, key=lambda c: (c.need > budget, c.need))
    return leanest, "nothing fits: the leanest layout is planned", tried


def _reason(found: Candidate, tried: list[Candidate], ram_budget: float | None) -> str:
    layout = found.layout
    per_gpu = f"{found.need / GIB:.1f} GiB a GPU at its leanest"
    if layout.parallelism == "ddp":
        if layout.world == 1:
            return "one GPU: nothing to share"
        return f"the model fits one GPU ({per_gpu}): each GPU trains a full copy, the least communication"
    first = tried[0]
    why = (f"one GPU cannot hold it ({first.need / GIB:.1f} GiB at its leanest): " if first.layout.parallelism
           == "ddp" and first is not found else "")
    text = f"{why}{NAMES[layout.parallelism]} divides the model among {layout.world} GPUs ({per_gpu})"
    if layout.offload:
        text += ", its weights and optimizer states offloaded to CPU RAM (slower steps; nothing else fits)"
    if layout.parallelism == "deepspeed":
        fsdp = next((c for c in tried if c.layout.parallelism == "fsdp" and c.layout.offload == layout.offload
                     and c.quantization == found.quantization), None)
        if fsdp is not None and ram_budget is not None:
            text += (f"; FSDP would need {fsdp.host / GIB:.0f} GiB of CPU RAM a machine to load it, more than "
                     f"the {ram_budget / GIB:.0f} GiB usable, while ZeRO-3 partitions it as it loads")
    return text


def gpus_needed(model: object, shape: TrainingShape, budget: float, first: int = 2, most: int = 128) -> int | None:
    """How many GPUs of this size FSDP needs for `shape` (its leanest), or None past `most`."""
    for count in range(first, most + 1):
        trial = replace(shape, sharding="fsdp", shards=count, offload=False)
        if estimate_memory(model, trial).total <= budget:
            return count
    return None
