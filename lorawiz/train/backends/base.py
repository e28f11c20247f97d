"""What a training backend provides, and how `--backend auto` picks one."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any, Protocol

from lorawiz.errors import LorawizError

BACKENDS = ("auto", "hf", "unsloth")
# Unsloth supports these architectures (its FastLanguageModel dispatch table) on CUDA GPUs of compute capability 7.0+.
UNSLOTH_ARCHITECTURES = frozenset({"llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3_text", "phi3"})
UNSLOTH_MIN_CAPABILITY = (7, 0)


@dataclass
class LoadedModel:
    """A model ready to train (LoRA applied) and its tokenizer, with what the backend did worth saying."""

    model: Any
    tokenizer: Any
    notes: list[str] = field(default_factory=list)
    labels: list[str] | None = None  # a sequence-classification head's classes, in the order of its scores
    method: str = "sft"  # the trainer it goes to: sft (TRL's SFTTrainer), dpo (its DPOTrainer)
    started: bool = False  # its adapter is from_adapter's (trained before), not a new one


class Backend(Protocol):
    name: str

    def load(self, cfg: Any) -> LoadedModel:
        """Load the base model (quantised as configured) and tokenizer, and wrap the model with LoRA."""
        ...

    def trainer(self, loaded: LoadedModel, train_data: Any, eval_data: Any, args: Any, callbacks: list,
                lengths: Any = None) -> Any:
        """A transformers Trainer (TRL SFTTrainer) over pre-tokenised data; `lengths` (the training rows' lengths)
        serve length-grouped batches."""
        ...


def unsloth_cannot_take(cfg: Any) -> list[str]:
    """Settings the unsloth backend cannot honour (its own NF4 quantisation, no DoRA), as `name = value`."""
    model = cfg.model
    found = [(name, value) for name, value, ok in (
        ("use_dora", cfg.lora.use_dora, not cfg.lora.use_dora),
        ("head", cfg.data.head, cfg.data.head == "lm"),  # FastLanguageModel trains language-model heads
        ("method", cfg.training.method, cfg.training.method == "sft"),  # lorawiz's unsloth backend runs SFT only
        ("from_adapter", cfg.model.from_adapter, not cfg.model.from_adapter),
        ("bnb_4bit_quant_type", model.bnb_4bit_quant_type, model.bnb_4bit_quant_type == "nf4"),
        ("bnb_4bit_use_double_quant", model.bnb_4bit_use_double_quant, model.bnb_4bit_use_double_quant),
        ("bnb_4bit_compute_dtype", model.bnb_4bit_compute_dtype, model.bnb_4bit_compute_dtype == "auto"),
        ("pad_token", model.pad_token, model.pad_token is None),
    ) if not ok]
    return [f"{name} = {value}" for name, value in found]


def choose_backend(requested: str, hardware: Any, architecture: str, cfg: Any) -> tuple[str, str]:
    """The backend to use and why."""
    if requested not in BACKENDS:
        raise LorawizError(f"--backend {requested}: unknown backend.", hint=f"Use one of: {', '.join(BACKENDS)}.")
    untakable = unsloth_cannot_take(cfg)
    installed = importlib.util.find_spec("unsloth") is not None
    gpu_ok = not hardware.is_cpu_only and all(tuple(g.compute_capability) >= UNSLOTH_MIN_CAPABILITY
                                              for g in hardware.gpus)
    arch_ok = architecture in UNSLOTH_ARCHITECTURES
    if requested == "hf":
        return "hf", "asked for with --backend hf"
    if requested == "unsloth":
        missing = [why for ok, why in ((installed, "unsloth is not installed (pip install -e \".[unsloth]\")"),
                                       (gpu_ok, "it needs a CUDA GPU of compute capability 7.0 or newer"),
                                       (arch_ok, f"it does not support the {architecture} architecture"),
                                       (not untakable, f"it cannot take {', '.join(untakable)}"))
                   if not ok]
        if missing:
            raise LorawizError(f"--backend unsloth cannot run here: {'; '.join(missing)}.",
                               hint="Use --backend hf (or auto).")
        return "unsloth", "asked for with --backend unsloth"
    if installed and gpu_ok and arch_ok and not untakable:
        return "unsloth", "auto: unsloth is installed and supports this GPU and architecture"
    why = ("unsloth is not installed" if not installed else "no CUDA GPU of compute capability 7.0+" if not gpu_ok
           else f"unsloth does not support {architecture}" if not arch_ok
           else f"unsloth cannot take {', '.join(untakable)}")
    return "hf", f"auto: {why}, so transformers + peft + TRL"
