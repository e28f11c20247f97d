"""How many parameters a LoRA adapter has: which linears it wraps, in how many layers, at which rank.
Pure: model facts (lorawiz.catalog) in, counts out; lorawiz.memory and the disk check size adapters with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def targeted_linears(model: Any, targets: Iterable[str] | str) -> dict[str, tuple[int, int]]:
    """The per-layer linear modules LoRA wraps: all of them for "all-linear", else those named."""
    shapes = model.linear_shapes()
    if isinstance(targets, str):
        targets = shapes if targets == "all-linear" else [t.strip() for t in targets.split(",")]
    return {name: shapes[name] for name in targets if name in shapes}


def adapted_layer_count(layers_to_transform: Iterable[int] | None) -> int | None:
    """How many decoder layers layers_to_transform gives adapters (None: all of them)."""
    return len(set(layers_to_transform)) if layers_to_transform else None


def lora_parameters(model: Any, r: int, targets: Iterable[str] | str = "all-linear", layers: int | None = None
                    ) -> int:
    """Trainable LoRA parameters: r x (in + out) for each wrapped linear in each layer (Hu et al. 2021).

    A mixture of experts adds, for "all-linear", what peft (0.21 with transformers 5) wraps in place of the v4
    Linears of Mixtral- and Qwen-MoE-style blocks: the fused gate/up experts with rank 2r per expert, the down
    experts with rank r per expert, and the router (peft.utils.transformers_weight_conversion). Checked against
    peft on the meta device in tests/unit/test_memory.py."""
    per_layer = sum(r * (fan_in + fan_out) for fan_in, fan_out in targeted_linears(model, targets).values())
    if targets == "all-linear" and model.is_moe and model.lora_wraps_experts:
        hidden, width, experts = model.hidden, model.expert_intermediate, model.experts
        per_layer += 2 * r * experts * (hidden + 2 * width) + r * experts * (width + hidden) + r * (hidden + experts)
    return per_layer * (model.layers if layers is None else min(layers, model.layers))
