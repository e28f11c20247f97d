"""The `hf` backend: transformers + peft + TRL's SFTTrainer, with bitsandbytes 4-/8-bit quantisation."""

from __future__ import annotations

import importlib.util
from typing import Any

from lorawiz.errors import LorawizError
from lorawiz.train.backends.base import LoadedModel


def torch_dtype(values: dict[str, Any]) -> Any:
    import torch

    if values.get("bf16"):
        return torch.bfloat16
    if values.get("fp16"):
        return torch.float16
    return torch.float32


def quantization_config(values: dict[str, Any]) -> Any:
    if not (values.get("load_in_4bit") or values.get("load_in_8bit")):
        return None
    from transformers import BitsAndBytesConfig

    if values.get("load_in_8bit"):
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = values.get("bnb_4bit_compute_dtype") or "auto"
    import torch

    dtype = torch_dtype(values) if compute == "auto" else getattr(torch, {"bf16": "bfloat16", "fp16": "float16",
                                                                           "fp32": "float32"}.get(compute, compute))
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=values.get("bnb_4bit_quant_type") or "nf4",
                              bnb_4bit_use_double_quant=bool(values.get("bnb_4bit_use_double_quant", True)),
                              bnb_4bit_compute_dtype=dtype)


def lora_config(values: dict[str, Any]) -> Any:
    from peft import LoraConfig

    targets = values.get("lora_target_modules") or "all-linear"
    return LoraConfig(
        r=int(values["lora_r"]), lora_alpha=int(values["lora_alpha"]), lora_dropout=float(values["lora_dropout"]),
        target_modules=targets, bias=values.get("lora_bias") or "none", use_dora=bool(values.get("use_dora")),
        use_rslora=bool(values.get("use_rslora")), modules_to_save=values.get("modules_to_save") or None,
        task_type="CAUSAL_LM",
    )


class HFBackend:
    name = "hf"

    def load(self, values: dict[str, Any]) -> LoadedModel:
        from peft import get_peft_model, prepare_model_for_kbit_training
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from lorawiz.train.dataset import ensure_chat_template

        path = values["model_name_or_path"]
        common = {"trust_remote_code": bool(values.get("trust_remote_code")), "cache_dir": values.get("cache_dir")}
        notes = []
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, **common)
            quant = quantization_config(values)
            model = AutoModelForCausalLM.from_pretrained(
                path, dtype=torch_dtype(values), quantization_config=quant,
                attn_implementation="flash_attention_2" if flash_attention(values) else "sdpa",
                device_map=_device_map(quant), **common)
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
        if quant is not None:
            model = prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=bool(values.get("gradient_checkpointing")),
                gradient_checkpointing_kwargs={"use_reentrant": False})
        model = get_peft_model(model, lora_config(values))
        return LoadedModel(model, tokenizer, notes)

    def trainer(self, loaded: LoadedModel, train_data: Any, eval_data: Any, args: Any, callbacks: list) -> Any:
        from lorawiz.train.sampling import sft_trainer_class

        return sft_trainer_class()(model=loaded.model, args=args, train_dataset=train_data, eval_dataset=eval_data,
                          processing_class=loaded.tokenizer, callbacks=callbacks)


def _device_map(quant: Any) -> Any:
    """Quantised models must be placed at load time: on this process's GPU (one per process under DDP)."""
    if quant is None:
        return None
    import os

    import torch

    if torch.cuda.is_available():
        return {"": int(os.environ.get("LOCAL_RANK", "0"))}
    return {"": "cpu"}


def flash_attention(values: dict[str, Any]) -> bool:
    """FlashAttention 2 when installed on CUDA in 16-bit: it also allows padding-free batches."""
    import torch

    return (importlib.util.find_spec("flash_attn") is not None and torch.cuda.is_available()
            and bool(values.get("bf16") or values.get("fp16")))


def liger_available() -> bool:
    import torch

    return importlib.util.find_spec("liger_kernel") is not None and torch.cuda.is_available()
