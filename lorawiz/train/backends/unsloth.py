"""The `unsloth` backend: Unsloth's FastLanguageModel with the same configuration meaning as `hf`.

The only module that imports unsloth, and it must be imported before transformers, trl or peft (Unsloth patches
them on import): lorawiz.train.backends.base.get_backend imports this module before the model is loaded.
Training itself is TRL's SFTTrainer over the same pre-tokenised data as the `hf` backend, so both write the same
outputs. Written against Unsloth's documented API (FastLanguageModel.from_pretrained / get_peft_model).
"""

from __future__ import annotations

from typing import Any

import unsloth  # noqa: F401  (first: it patches transformers, trl and peft)
from unsloth import FastLanguageModel

from lorawiz.errors import LorawizError
from lorawiz.train.backends.base import LoadedModel
from lorawiz.train.backends.hf import torch_dtype

# Unsloth wants explicit module names; these are "all-linear" for the architectures it supports.
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ALL_LINEAR_FUSED = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]  # Phi-3


class UnslothBackend:
    name = "unsloth"

    def load(self, values: dict[str, Any]) -> LoadedModel:
        from lorawiz.train.dataset import ensure_chat_template

        path = values["model_name_or_path"]
        try:
            model, tokenizer = FastLanguageModel.from_pretrained(
                model_name=path, max_seq_length=int(values["max_seq_length"]), dtype=torch_dtype(values),
                load_in_4bit=bool(values.get("load_in_4bit")), load_in_8bit=bool(values.get("load_in_8bit")),
                trust_remote_code=bool(values.get("trust_remote_code")))
        except (OSError, ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise LorawizError(f"unsloth cannot load {path}: {first}", hint="Try --backend hf.") from exc
        notes = []
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
            notes.append("tokenizer has no pad token: using its end-of-sequence token for padding")
        if ensure_chat_template(tokenizer):
            notes.append("tokenizer has no chat template: using ChatML")
        targets = values.get("lora_target_modules") or "all-linear"
        if targets == "all-linear":
            fused = getattr(model.config, "model_type", "") == "phi3"
            targets = ALL_LINEAR_FUSED if fused else ALL_LINEAR
        model = FastLanguageModel.get_peft_model(
            model, r=int(values["lora_r"]), lora_alpha=int(values["lora_alpha"]),
            lora_dropout=float(values["lora_dropout"]), target_modules=targets, bias=values.get("lora_bias") or "none",
            use_gradient_checkpointing="unsloth" if values.get("gradient_checkpointing") else False,
            random_state=int(values.get("seed") or 42), use_rslora=bool(values.get("use_rslora")),
            modules_to_save=values.get("modules_to_save") or None, max_seq_length=int(values["max_seq_length"]))
        return LoadedModel(model, tokenizer, notes)

    def trainer(self, loaded: LoadedModel, train_data: Any, eval_data: Any, args: Any, callbacks: list) -> Any:
        from lorawiz.train.sampling import sft_trainer_class

        # Unsloth's own gradient checkpointing is on the model; the Trainer must not add its own on top.
        args.gradient_checkpointing = False
        return sft_trainer_class()(model=loaded.model, args=args, train_dataset=train_data, eval_dataset=eval_data,
                          processing_class=loaded.tokenizer, callbacks=callbacks)
