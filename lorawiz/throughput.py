"""How long a run takes: tokens x FLOPs a token over the hardware's peak throughput at an assumed utilisation.

Pure: plain data in, an estimate out, labelled as one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lorawiz.memory import TrainingShape, weight_bytes

# Assumed model-FLOPs utilisation of LoRA training, for the time estimate only: dense-16-bit LoRA reaches roughly
# a third of peak on recent GPUs, 4-bit QLoRA less (dequantisation on every matmul). Our assumption, to be
# replaced by measured figures (bench/).
MFU = {"none": 0.35, "nf4": 0.25, "nf4-dq": 0.25, "int8": 0.2}
CPU_FLOPS = 1e11  # ~100 GFLOP/s sustained in fp32 on a few cores: CPU training is for smoke tests only

# What one GPU moves in an all-gather, GB/s one way: NVLink on SXM boards (NVIDIA datasheets: H100/H200 SXM 900 GB/s
# and A100 SXM 600 GB/s both ways together), else PCIe (4.0 x16: 32 GB/s in theory, ~25 achieved; the T4's 3.0 x16
# half that). Between machines, 50 GB/s a GPU: one 400 Gb/s InfiniBand port a GPU, as DGX H100 has. Assumptions
# until a multi-GPU run measures them.
LINK_GBS = (("H200", 450.0), ("H100 80GB HBM3", 450.0), ("A100-SXM", 300.0), ("Tesla T4", 12.0))
PCIE_GBS = 25.0
NETWORK_GBS = 50.0


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
    forward pass. DPO puts both answers of a pair through (shape.sequences), and preference methods add forward
    passes that train nothing (the reference's, KTO's KL term): 2N a token each.
    """
    if not data.rows or not data.mean_tokens:
        return None
    tokens = int(steps * effective_batch * shape.sequences
                 * (shape.seq_len if shape.micro_batch > 1 else data.mean_tokens))
    per_token = ((6 if shape.gradient_checkpointing else 4) + 2 * shape.passes_without_gradients) * model.parameters()[
        "total"]
    if hardware.is_cpu_only:
        flops, assumption = CPU_FLOPS, "CPU at ~100 GFLOP/s"
    else:
        peak = min((g.peak_tflops_bf16 or 0) for g in hardware.gpus) * 1e12
        if not peak:
            return TimeEstimate(steps, tokens, 0.0, "unknown GPU peak throughput: no time estimate")
        mfu = MFU.get(shape.quantization, 0.25)
        flops = peak * mfu * hardware.world_size
        assumption = f"{hardware.world_size} GPU(s) at {mfu:.0%} of {peak / 1e12:.0f} TFLOP/s peak"
    seconds = tokens * per_token / flops
    if shape.sharded and not hardware.is_cpu_only:
        micro_batches = steps * effective_batch / (shape.micro_batch * hardware.world_size)  # each GPU's
        moving, how = sharded_traffic_seconds(model, hardware, shape)
        compute = seconds / micro_batches
        if moving > compute:  # the gathers overlap the compute; the slower of the two sets the pace
            seconds = micro_batches * moving
            assumption += f"; {how} ({moving:.1f} s a micro-batch against {compute:.1f} s of compute) sets the pace"
    return TimeEstimate(steps, tokens, seconds, f"estimate: {assumption}; padded micro-batches count as full "
                        "length")


def sharded_traffic_seconds(model: Any, hardware: Any, shape: TrainingShape) -> tuple[float, str]:
    """Seconds one GPU spends receiving what one micro-batch of a sharded run needs, and what that is: the weights
    all-gathered for the forward pass and again for the backward pass (reshard_after_forward), the other machines'
    shards over the network and this machine's over its links; offloaded, its own shard also comes from CPU RAM
    twice, over PCIe."""
    weights, _ = weight_bytes(model, shape)
    name = hardware.gpus[0].name
    link = next((gbs for key, gbs in LINK_GBS if key in name), PCIE_GBS) * 1e9
    machines, world = hardware.machines, shape.shards
    local = world // machines
    seconds = 2 * weights * ((local - 1) / world / link + (machines - 1) / machines / (NETWORK_GBS * 1e9))
    how = "all-gathering the weights twice"
    if shape.offload:
        seconds += 2 * weights / world / (PCIE_GBS * 1e9)
        how += " and copying the offloaded shard from RAM twice"
    return seconds, how
