"""The `hf` backend: transformers + peft + TRL's SFTTrainer, with bitsandbytes 4-/8-bit quantisation."""

from __future__ import annotations

import importlib.util
from typing import Any

from lorawiz.errors import LorawizError
from lorawiz.train.backends.base import LoadedModel


class HFBackend:
    name = "hf"

    def load(self, cfg: Any) -> LoadedModel:
        from peft import get_peft_model, prepare_model_for_kbit_training
        from transformers import AutoModelForCausalLM

        from lorawiz.data.masking import ensure_chat_template
        from lorawiz.data.tokens import load_tokenizer
        from lorawiz.train.args import lora_config, model_kwargs

        notes = []
        quantized = cfg.model.load_in_4bit or cfg.model.load_in_8bit
        kwargs = model_kwargs(cfg, "flash_attention_2" if flash_attention(cfg) else "sdpa", _device_map(quantized))
        path = kwargs["pretrained_model_name_or_path"]
        try:
            tokenizer = load_tokenizer(path, trust_remote_code=kwargs["trust_remote_code"],
                                       cache_dir=kwargs["cache_dir"])
            model = AutoModelForCausalLM.from_pretrained(**kwargs)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise LorawizError(f"cannot load model {path}: {first}",
                               hint="Check --model (a local folder or a hub id; gated models need `hf auth "
                                    "login`).") from exc
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
            notes.append("tokenizer has no pad token: using its end-of-sequence token for padding")
        if ensure_chat_template(tokenizer):
            notes.append("tokenizer has no chat template: using ChatML")
        model.config.use_cache = False  # the KV cache is for generation; training with it only costs memory
        if kwargs["quantization_config"] is not None:
            model = prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=cfg.optimization.gradient_checkpointing,
                gradient_checkpointing_kwargs={"use_reentrant": False})
        model = get_peft_model(model, lora_config(cfg))
        return LoadedModel(model, tokenizer, notes)

    def trainer(self, loaded: LoadedModel, train_data: Any, eval_data: Any, args: Any, callbacks: list,
                lengths: Any = None) -> Any:
        from lorawiz.train.sampling import sft_trainer_class

        trainer_class = sft_trainer_class(lengths)
        return trainer_class(model=loaded.model, args=args, train_dataset=train_data, eval_dataset=eval_data,
                             processing_class=loaded.tokenizer, callbacks=callbacks)


def _device_map(quantized: bool) -> Any:
    """Quantised models must be placed at load time: on this process's GPU (one per process under DDP)."""
    if not quantized:
        return None
    import os

    import torch

    if torch.cuda.is_available():
        return {"": int(os.environ.get("LOCAL_RANK", "0"))}
    return {"": "cpu"}


def flash_attention(cfg: Any) -> bool:
    """FlashAttention 2 when installed on CUDA in 16-bit: it also allows padding-free batches."""
    import torch

    return (importlib.util.find_spec("flash_attn") is not None and torch.cuda.is_available()
            and bool(cfg.optimization.bf16 or cfg.optimization.fp16))


def liger_available() -> bool:
    import torch

    return importlib.util.find_spec("liger_kernel") is not None and torch.cuda.is_available()
