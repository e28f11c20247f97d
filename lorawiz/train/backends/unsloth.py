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

from lorawiz.errors import LorawizError, first_line
from lorawiz.train.backends.base import LoadedModel


class UnslothBackend:
    name = "unsloth"

    def load(self, cfg: Any) -> LoadedModel:
        from lorawiz.data.masking import ensure_chat_template
        from lorawiz.train.args import unsloth_model_kwargs, unsloth_peft_kwargs

        kwargs = unsloth_model_kwargs(cfg)
        path = kwargs["model_name"]
        try:
            model, tokenizer = FastLanguageModel.from_pretrained(**kwargs)
        except (OSError, ValueError, RuntimeError) as exc:
            first = first_line(exc)
            raise LorawizError(f"unsloth cannot load {path}: {first}", hint="Try --backend hf.") from exc
        notes = []
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
            notes.append("tokenizer has no pad token: using its end-of-sequence token for padding")
        if ensure_chat_template(tokenizer):
            notes.append("tokenizer has no chat template: using ChatML")
        model = FastLanguageModel.get_peft_model(model, **unsloth_peft_kwargs(cfg, getattr(model.config, "model_type",
                                                                                             "")))
        return LoadedModel(model, tokenizer, notes)

    def trainer(self, loaded: LoadedModel, train_data: Any, eval_data: Any, args: Any, callbacks: list,
                lengths: Any = None) -> Any:
        from lorawiz.train.sampling import sft_trainer_class

        # Unsloth's own gradient checkpointing is on the model; the Trainer must not add its own on top.
        args.gradient_checkpointing = False
        trainer_class = sft_trainer_class(lengths)
        return trainer_class(model=loaded.model, args=args, train_dataset=train_data, eval_dataset=eval_data,
                             processing_class=loaded.tokenizer, callbacks=callbacks)
