"""The `hf` backend: transformers + peft + TRL's SFTTrainer, with bitsandbytes 4-/8-bit quantisation."""

from __future__ import annotations

import importlib.util
from typing import Any

from lorawiz.errors import LorawizError, first_line
from lorawiz.train.backends.base import LoadedModel


class HFBackend:
    name = "hf"

    def load(self, cfg: Any) -> LoadedModel:
        from peft import get_peft_model, prepare_model_for_kbit_training
        from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

        from lorawiz.data.masking import ensure_chat_template
        from lorawiz.data.tokens import load_tokenizer
        from lorawiz.hub import cache_only_unless_local
        from lorawiz.train.args import lora_config, model_kwargs, sharded, trainer_gradient_checkpointing

        notes = []
        quantized = cfg.model.load_in_4bit or cfg.model.load_in_8bit
        # None lets transformers take SDPA where the model supports it and eager attention where not (gpt-oss:
        # its attention sinks have no SDPA path).
        # Sharded, the model loads on the CPU and FSDP or ZeRO-3 places each process's shard on its GPU
        kwargs = model_kwargs(cfg, "flash_attention_2" if flash_attention(cfg) else None,
                              None if sharded(cfg) else _device_map(quantized))
        path = kwargs["pretrained_model_name_or_path"]
        if shipped_quantization(path, kwargs) == "mxfp4":
            if quantized:
                raise LorawizError(f"{path} ships its experts in MXFP4, which bitsandbytes cannot quantize again and "
                                   "transformers cannot train as they are.",
                                   hint="Set load_in_4bit=false (and load_in_8bit=false): lorawiz then loads them "
                                        "dequantized to 16-bit; `lorawiz plan` shows the memory that takes.")
            from transformers import Mxfp4Config

            kwargs["quantization_config"] = Mxfp4Config(dequantize=True)
            notes.append("the checkpoint ships MXFP4 experts: loaded dequantized to 16-bit, as transformers trains "
                         "them")
        try:
            tokenizer = load_tokenizer(path, trust_remote_code=kwargs["trust_remote_code"],
                                       cache_dir=kwargs["cache_dir"])
            with cache_only_unless_local(path):
                head = cfg.data.head == "sequence"
                model = (AutoModelForSequenceClassification if head else AutoModelForCausalLM).from_pretrained(
                    **kwargs)
        except (OSError, ValueError) as exc:
            first = first_line(exc)
            raise LorawizError(f"cannot load model {path}: {first}",
                               hint="Check --model (a local folder or a hub id; gated models need `hf auth "
                                    "login`).") from exc
        if cfg.model.pad_token:
            set_pad_token(tokenizer, cfg.model.pad_token)
        elif tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
            notes.append("tokenizer has no pad token: using its end-of-sequence token for padding")
        if ensure_chat_template(tokenizer):
            notes.append("tokenizer has no chat template: using ChatML")
        model.config.use_cache = False  # the KV cache is for generation; training with it only costs memory
        if head:  # the head scores each row's last token that is not padding: it must know the padding token
            model.config.pad_token_id = tokenizer.pad_token_id
        if quantized:
            loaded_dtypes = {name: param.dtype for name, param in model.named_parameters()}
            model = prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=trainer_gradient_checkpointing(cfg),
                gradient_checkpointing_kwargs={"use_reentrant": False})
            restore_loaded_dtypes(model, loaded_dtypes)
            keep_cpu_4bit_layout(model)
        model = start_adapter(model, cfg) if cfg.model.from_adapter else get_peft_model(model, lora_config(cfg))
        return LoadedModel(model, tokenizer, notes, labels=list(cfg.data.labels) if head else None,
                           method=cfg.training.method, started=bool(cfg.model.from_adapter))

    def trainer(self, loaded: LoadedModel, train_data: Any, eval_data: Any, args: Any, callbacks: list,
                lengths: Any = None) -> Any:
        if loaded.labels is not None:  # a sequence head: transformers' Trainer, batches padded per batch
            from transformers import DataCollatorWithPadding

            from lorawiz.train.head import compute_metrics
            from lorawiz.train.sampling import trainer_class

            trainer = trainer_class(lengths)(model=loaded.model, args=args, train_dataset=train_data,
                                             eval_dataset=eval_data, processing_class=loaded.tokenizer,
                                             callbacks=callbacks, compute_metrics=compute_metrics(loaded.labels),
                                             data_collator=DataCollatorWithPadding(loaded.tokenizer))
            # The head's loss is a mean over rows, whatever num_items_in_batch says; the Trainer reads the model's
            # **kwargs as "takes loss kwargs" and then multiplies the loss by the processes (transformers 5.17-5.24
            # Trainer.compute_loss): under DDP the loss and its gradients came out twice too large on 2 processes.
            trainer.model_accepts_loss_kwargs = False
            return trainer
        if loaded.method in ("dpo", "kto", "orpo"):
            return preference_trainer(loaded, train_data, eval_data, args, callbacks, lengths)
        from lorawiz.train.sampling import sft_trainer_class

        trainer_class = sft_trainer_class(lengths)
        return trainer_class(model=loaded.model, args=args, train_dataset=train_data, eval_dataset=eval_data,
                             processing_class=loaded.tokenizer, callbacks=callbacks)


def start_adapter(model: Any, cfg: Any) -> Any:
    """The base with from_adapter's LoRA weights, trainable (its settings are the run's: lorawiz.train.sources)."""
    from peft import PeftConfig, PeftModel

    from lorawiz.train.args import planned

    config = PeftConfig.from_pretrained(str(cfg.model.from_adapter))
    config.lora_dropout = planned(cfg, "lora_dropout")  # not part of the weights: the plan's value runs
    return PeftModel.from_pretrained(model, str(cfg.model.from_adapter), config=config, is_trainable=True)


def preference_trainer(loaded: LoadedModel, train_data: Any, eval_data: Any, args: Any, callbacks: list,
                       lengths: Any) -> Any:
    """TRL's DPOTrainer, KTOTrainer or ORPOTrainer on the run's adapter. DPO's and KTO's reference is in the same
    model: a new adapter's is the base (the adapter off); a started one's (from_adapter) is the adapter as it was
    loaded, a frozen copy TRL makes beside it ("ref"). One copy of the base weights either way; ORPO has none."""
    from lorawiz.train.sampling import preference_trainer_class

    trainer_class = preference_trainer_class(loaded.method, lengths)
    trainer = trainer_class(model=loaded.model, args=args, train_dataset=train_data, eval_dataset=eval_data,
                            processing_class=loaded.tokenizer, callbacks=callbacks)
    model = trainer.model
    if not loaded.started and "ref" in getattr(model, "peft_config", {}):
        # TRL copies any adapter it is given as the reference; a new one is all zeros in B, so the copy is the base
        # at the cost of a second adapter: the adapter switched off computes the same, with nothing extra.
        model.delete_adapter("ref")
    return trainer


def shipped_quantization(path: str, kwargs: dict[str, Any]) -> str:
    """The quant_method the checkpoint's config.json ships with ("mxfp4" for gpt-oss), or "" (also when the config
    cannot be read: loading the model then says why)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=kwargs["trust_remote_code"],
                                            cache_dir=kwargs["cache_dir"])
    except (OSError, ValueError):
        return ""
    found = getattr(config, "quantization_config", None)
    method = found.get("quant_method") if isinstance(found, dict) else getattr(found, "quant_method", None)
    return str(getattr(method, "value", method) or "")


def keep_cpu_4bit_layout(model: Any) -> int:
    """On a CPU with AVX512-BF16, bitsandbytes 0.50 repacks a 4-bit weight in place for a faster kernel the first
    time it runs without gradients (an evaluation): Linear4bit.forward, packing_format_for_cpu. Training after that
    computes different gradients (grad norm 0.73 instead of 2.14 after one evaluation of builtin:tiny), and under
    FSDP or ZeRO-3 only the gathered copy is repacked while the shared quant_state says all of it is. Off here, so
    evaluating never changes the weights; GPUs never take that path. Returns how many layers were set."""
    import torch

    if torch.cuda.is_available():
        return 0
    layers = [module for module in model.modules() if hasattr(module, "support_avx512bf16_for_cpu")]
    for module in layers:
        module.support_avx512bf16_for_cpu = False
    return len(layers)


def restore_loaded_dtypes(model: Any, loaded_dtypes: dict[str, Any]) -> int:
    """Put the frozen parameters prepare_model_for_kbit_training cast to fp32 (embeddings, lm_head, norms, and a
    mixture of experts' experts and router: all that bitsandbytes left unquantized) back in the 16-bit dtype they
    were loaded in; its other work (gradient checkpointing, input gradients) stays. Their values are the
    checkpoint's either way, autocast computes with a 16-bit copy of each matrix, and the RMSNorms of these models
    compute in fp32 inside, so fp32 only costs memory: 2 bytes a parameter, and worse, fp32 final hidden states make
    TRL's chunked loss copy lm_head to fp32 and then to bf16 for every chunk, and an fp32 residual stream doubles
    every checkpoint (bench/memory_truth.py: 1.0 GiB of Llama-3.2-1B's 2.6 GiB QLoRA peak). The QLoRA reference
    code puts embed_tokens and lm_head back the same way (artidoro/qlora, qlora.py). Returns how many parameters
    were put back."""
    import torch

    restored = 0
    for name, param in model.named_parameters():
        loaded = loaded_dtypes.get(name)
        if not param.requires_grad and param.dtype == torch.float32 and loaded in (torch.bfloat16, torch.float16):
            param.data = param.data.to(loaded)
            restored += param.numel()
    return restored


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


def set_pad_token(tokenizer: Any, token: str) -> None:
    """pad_token: one the tokenizer has (a new token would need new embedding rows, which LoRA does not train)."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or (token_id == tokenizer.unk_token_id and token != tokenizer.unk_token):
        raise LorawizError(f"pad_token {token}: the tokenizer has no such token.",
                           hint="Give one of its tokens (its end-of-sequence token is "
                                f"{tokenizer.eos_token}), or leave pad_token unset.")
    tokenizer.pad_token = token
