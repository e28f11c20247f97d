"""lorawiz: LoRA/QLoRA fine-tuning without guesswork."""

__version__ = "0.1.0"
