"""The `unsloth` backend: Unsloth's FastLanguageModel with the same configuration meaning as `hf`.

The only module that imports unsloth, and it must be imported before transformers, trl or peft (Unsloth patches
them on import): lorawiz.train.backends.get_backend imports this module before the model is loaded.
Training itself is TRL's SFTTrainer over the same pre-tokenised data as the `hf` backend, so both write the same
outputs. Written against Unsloth's documented API (FastLanguageModel.from_pretrained / get_peft_model).
"""

from __future__ import annotations

from typing import Any

import unsloth  # noqa: F401  (first: it patches transformers, trl and peft)
from unsloth import FastLanguageModel

from lorawiz.errors import LorawizError
from lorawiz.train.backends.base import LoadedModel

# Unsloth wants explicit module names; these are "all-linear" for the architectures it supports.
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ALL_LINEAR_FUSED = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]  # Phi-3


class UnslothBackend:
    name = "unsloth"

    def load(self, cfg: Any) -> LoadedModel:
        from lorawiz.builtin import local_path
        from lorawiz.data.masking import ensure_chat_template
        from lorawiz.train.args import model_dtype, planned

        path = local_path(cfg.model.model_name_or_path)
        max_len = planned(cfg, "max_seq_length")
        try:
            model, tokenizer = FastLanguageModel.from_pretrained(
                model_name=path, max_seq_length=max_len, dtype=model_dtype(cfg),
                load_in_4bit=cfg.model.load_in_4bit, load_in_8bit=cfg.model.load_in_8bit,
                trust_remote_code=cfg.model.trust_remote_code,
                **({"cache_dir": cfg.model.cache_dir} if cfg.model.cache_dir else {}))
        except (OSError, ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise LorawizError(f"unsloth cannot load {path}: {first}", hint="Try --backend hf.") from exc
        notes = []
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
            notes.append("tokenizer has no pad token: using its end-of-sequence token for padding")
        if ensure_chat_template(tokenizer):
            notes.append("tokenizer has no chat template: using ChatML")
        targets = cfg.lora.lora_target_modules
        if targets == "all-linear":
            fused = getattr(model.config, "model_type", "") == "phi3"
            targets = ALL_LINEAR_FUSED if fused else ALL_LINEAR
        lora = cfg.lora
        model = FastLanguageModel.get_peft_model(
            model, r=planned(cfg, "lora_r"), lora_alpha=planned(cfg, "lora_alpha"),
            lora_dropout=planned(cfg, "lora_dropout"), target_modules=targets, bias=lora.lora_bias,
            use_gradient_checkpointing="unsloth" if planned(cfg, "gradient_checkpointing") else False,
            random_state=cfg.training.seed, use_rslora=lora.use_rslora, modules_to_save=lora.modules_to_save,
            max_seq_length=max_len)
        return LoadedModel(model, tokenizer, notes)

    def trainer(self, loaded: LoadedModel, train_data: Any, eval_data: Any, args: Any, callbacks: list) -> Any:
        from lorawiz.train.sampling import sft_trainer_class

        # Unsloth's own gradient checkpointing is on the model; the Trainer must not add its own on top.
        args.gradient_checkpointing = False
        return sft_trainer_class()(model=loaded.model, args=args, train_dataset=train_data, eval_dataset=eval_data,
                          processing_class=loaded.tokenizer, callbacks=callbacks)
