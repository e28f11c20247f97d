"""How long a run takes: tokens x FLOPs a token over the hardware's peak throughput at an assumed utilisation.

Pure: plain data in, an estimate out, labelled as one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lorawiz.memory import TrainingShape

# Assumed model-FLOPs utilisation of LoRA training, for the time estimate only: dense-16-bit LoRA reaches roughly
# a third of peak on recent GPUs, 4-bit QLoRA less (dequantisation on every matmul). Our assumption, to be
# replaced by measured figures (bench/).
MFU = {"none": 0.35, "nf4": 0.25, "nf4-dq": 0.25, "int8": 0.2}
CPU_FLOPS = 1e11  # ~100 GFLOP/s sustained in fp32 on a few cores: CPU training is for smoke tests only


@dataclass
class TimeEstimate:
    steps: int
    tokens: int
    seconds: float
    assumption: str


def estimate_time(model: Any, hardware: Any, data: Any, shape: TrainingShape, steps: int,
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
        flops = peak * mfu * hardware.world_size
        assumption = f"{hardware.world_size} GPU(s) at {mfu:.0%} of {peak / 1e12:.0f} TFLOP/s peak"
    return TimeEstimate(steps, tokens, tokens * per_token / flops, f"estimate: {assumption}; "
                        "padded micro-batches count as full length")
