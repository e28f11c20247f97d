"""The typed RunConfig -> the library objects: TRL's SFTConfig, peft's LoraConfig, BitsAndBytesConfig, the seed.

One mapping function per object and no defaults of their own: every value comes from the configuration, whose
defaults live in the schema (lorawiz.config.schema) and whose open values the plan fills before training. A value
still open here is a bug in lorawiz, not a user error, so it fails loudly instead of being replaced.
"""

from __future__ import annotations

import math
from typing import Any


def planned(cfg: Any, name: str) -> Any:
    """A value the plan must have filled (an `auto` knob)."""
    from lorawiz.config.schema import SECTION_OF

    value = getattr(getattr(cfg, SECTION_OF[name]), name)
    if value is None:
        raise RuntimeError(f"{name} reached the trainer unset: the plan should have filled it")
    return value


def precision_name(cfg: Any) -> str:
    """The dtype the base model's non-quantised weights are loaded in: follows bf16 / fp16, else fp32."""
    return "bf16" if cfg.optimization.bf16 else "fp16" if cfg.optimization.fp16 else "fp32"


def model_dtype(cfg: Any) -> Any:
    from lorawiz.models import torch_dtype

    return torch_dtype(precision_name(cfg))


def model_kwargs(cfg: Any, attn_implementation: str | None = None, device_map: Any = None) -> dict[str, Any]:
    """AutoModelForCausalLM.from_pretrained's arguments (the path first, as `pretrained_model_name_or_path`)."""
    from lorawiz.builtin import local_path

    return {"pretrained_model_name_or_path": local_path(planned(cfg, "model_name_or_path")),
            "dtype": model_dtype(cfg), "quantization_config": quantization_config(cfg),
            "attn_implementation": attn_implementation, "device_map": device_map, **tokenizer_kwargs(cfg),
            **head_kwargs(cfg)}


def head_kwargs(cfg: Any) -> dict[str, Any]:
    """AutoModelForSequenceClassification's label arguments for a sequence head (the labels the run fills from
    its data when nobody set them); nothing for a language-model head."""
    if cfg.data.head != "sequence":
        return {}
    labels = planned(cfg, "labels")
    return {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
            "label2id": {label: index for index, label in enumerate(labels)}}


def tokenizer_kwargs(cfg: Any) -> dict[str, Any]:
    """What loading the model's tokenizer and config needs besides the path."""
    return {"trust_remote_code": cfg.model.trust_remote_code, "cache_dir": cfg.model.cache_dir}


def early_stopping(cfg: Any, monitor: Any = None) -> Any:
    """The early-stopping callback, or None when patience is 0 (off)."""
    train = cfg.training
    if train.early_stopping_patience == 0:
        return None
    from lorawiz.train.callbacks import EarlyStopping

    return EarlyStopping(train.early_stopping_patience, train.early_stopping_threshold,
                         metric=cfg.logging.metric_for_best_model,
                         greater_is_better=bool(cfg.logging.greater_is_better), monitor=monitor)


def quantization_config(cfg: Any) -> Any:
    """BitsAndBytesConfig for a 4-bit (QLoRA) or 8-bit base; None for a 16-bit base."""
    model = cfg.model
    if not (model.load_in_4bit or model.load_in_8bit):
        return None
    from transformers import BitsAndBytesConfig

    if model.load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    from lorawiz.models import torch_dtype

    compute = model.bnb_4bit_compute_dtype
    dtype = model_dtype(cfg) if compute == "auto" else torch_dtype(compute)
    # Sharded, the packed 4-bit weights are stored in the compute dtype: FSDP and ZeRO-3 shard only floating-point
    # tensors (bitsandbytes docs, "FSDP-QLoRA": bnb_4bit_quant_storage; PEFT's FSDP and DeepSpeed QLoRA guides)
    # ... in the dtype the model loads in (the guides: from_pretrained's dtype must be the storage dtype)
    storage = {"bnb_4bit_quant_storage": model_dtype(cfg)} if sharded(cfg) else {}
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=model.bnb_4bit_quant_type,
                              bnb_4bit_use_double_quant=model.bnb_4bit_use_double_quant,
                              bnb_4bit_compute_dtype=dtype, **storage)


def sharded(cfg: Any) -> bool:
    """Whether the run shards the model across its processes (FSDP or DeepSpeed ZeRO-3)."""
    return cfg.optimization.parallelism in ("fsdp", "deepspeed")


def trainer_gradient_checkpointing(cfg: Any) -> bool:
    """The Trainer's own gradient checkpointing: off under FSDP, which checkpoints each wrapped layer itself
    (fsdp_activation_checkpointing in the accelerate config; transformers refuses both at once)."""
    return bool(planned(cfg, "gradient_checkpointing")) and cfg.optimization.parallelism != "fsdp"


def lora_config(cfg: Any) -> Any:
    from peft import LoraConfig

    lora = cfg.lora
    return LoraConfig(
        r=planned(cfg, "lora_r"), lora_alpha=planned(cfg, "lora_alpha"), lora_dropout=planned(cfg, "lora_dropout"),
        target_modules=lora.lora_target_modules, bias=lora.lora_bias, use_dora=lora.use_dora,
        use_rslora=lora.use_rslora, modules_to_save=lora.modules_to_save,
        # SEQ_CLS: peft trains and saves the new score head in full (it adds it to modules_to_save)
        task_type="SEQ_CLS" if cfg.data.head == "sequence" else "CAUSAL_LM",
        layers_to_transform=lora.layers_to_transform,
    )


# Unsloth wants explicit module names; these are "all-linear" for the architectures it supports.
UNSLOTH_ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
UNSLOTH_ALL_LINEAR_FUSED = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]  # Phi-3


def unsloth_model_kwargs(cfg: Any) -> dict[str, Any]:
    """FastLanguageModel.from_pretrained's arguments (Unsloth quantises with its own NF4: the bnb_4bit_* knobs it
    cannot take are refused when the backend is chosen, lorawiz.train.backends.base.unsloth_cannot_take)."""
    from lorawiz.builtin import local_path

    model = cfg.model
    return {"model_name": local_path(planned(cfg, "model_name_or_path")),
            "max_seq_length": planned(cfg, "max_seq_length"), "dtype": model_dtype(cfg),
            "load_in_4bit": planned(cfg, "load_in_4bit"), "load_in_8bit": model.load_in_8bit,
            "trust_remote_code": model.trust_remote_code,
            **({"cache_dir": model.cache_dir} if model.cache_dir else {})}


def unsloth_peft_kwargs(cfg: Any, model_type: str) -> dict[str, Any]:
    """FastLanguageModel.get_peft_model's arguments (its own gradient checkpointing, seeded LoRA initialisation)."""
    lora = cfg.lora
    targets = lora.lora_target_modules
    if targets == "all-linear":
        targets = UNSLOTH_ALL_LINEAR_FUSED if model_type == "phi3" else UNSLOTH_ALL_LINEAR
    return {"r": planned(cfg, "lora_r"), "lora_alpha": planned(cfg, "lora_alpha"),
            "lora_dropout": planned(cfg, "lora_dropout"), "target_modules": targets, "bias": lora.lora_bias,
            "use_gradient_checkpointing": "unsloth" if planned(cfg, "gradient_checkpointing") else False,
            "random_state": cfg.training.seed, "use_rslora": lora.use_rslora, "modules_to_save": lora.modules_to_save,
            "max_seq_length": planned(cfg, "max_seq_length"),
            **({"layers_to_transform": lora.layers_to_transform} if lora.layers_to_transform else {})}


def set_seed(cfg: Any) -> None:
    """Seed Python, NumPy and torch before the LoRA weights are initialised: same seed, same run."""
    from transformers import set_seed as transformers_set_seed

    transformers_set_seed(cfg.training.seed)


def update_steps_per_epoch(rows: int, micro_batch: int, accumulation: int, world_size: int) -> int:
    """Optimizer steps in one epoch, as transformers' Trainer counts them (each process takes ceil(rows / world)
    rows; an epoch's last partial accumulation is a step)."""
    batches = math.ceil(math.ceil(rows / world_size) / micro_batch)
    return max(1, math.ceil(batches / accumulation))


def trainer_max_steps(cfg: Any, train_rows: int, world_size: int) -> int:
    """transformers' max_steps for lorawiz's "at most max_steps": the cap when it ends the run before
    num_train_epochs, else -1 (train by epochs). transformers itself would train max_steps even past the epochs."""
    cap = cfg.training.max_steps
    if cap <= 0:
        return -1
    per_epoch = update_steps_per_epoch(train_rows, planned(cfg, "per_device_train_batch_size"),
                                       planned(cfg, "gradient_accumulation_steps"), world_size)
    by_epochs = math.ceil(planned(cfg, "num_train_epochs") * per_epoch)
    return cap if cap < by_epochs else -1


def warmup(cfg: Any) -> int | float:
    """transformers 5 takes both spellings in warmup_steps: an int counts steps, a float below 1 is a ratio."""
    if cfg.training.warmup_steps is not None:
        return cfg.training.warmup_steps
    return float(planned(cfg, "warmup_ratio"))


def tensorboard_dir(cfg: Any) -> str:
    """Where the TensorBoard events go: logging_dir (derived as <output_dir>/logs unless set)."""
    import os

    log = cfg.logging
    return os.path.expanduser(log.logging_dir or os.path.join(log.output_dir, "logs"))


def trainer_config(cfg: Any, *, output_dir: str, on_gpu: bool, train_rows: int, world_size: int = 1,
               flash_attention: bool = False, liger: bool = False, extra: dict[str, Any] | None = None) -> Any:
    """The trainer's configuration for this run: TRL's SFTConfig (transformers' TrainingArguments plus TRL's data
    settings), or its DPOConfig for `method: dpo`."""
    common = training_arguments(cfg, output_dir=output_dir, on_gpu=on_gpu, train_rows=train_rows,
                                world_size=world_size, liger=liger)
    if cfg.training.method in ("dpo", "kto", "orpo"):
        if cfg.training.method == "kto":  # its KL term pairs neighbouring rows: read in order (shuffled once)
            common["train_sampling_strategy"] = "sequential"
        # the recommender's lora_dropout (0 for these) is what runs; TRL would zero any other
        return preference_config_class(cfg.training.method)(
            **common, max_length=planned(cfg, "max_seq_length"), beta=planned(cfg, "beta"), disable_dropout=False,
            **(extra or {}))
    from trl import SFTConfig

    return SFTConfig(
        **common,
        max_length=planned(cfg, "max_seq_length"),
        packing=planned(cfg, "packing"),
        # Without packing, FlashAttention can take the batch as one unpadded sequence (no compute on padding).
        padding_free=flash_attention and not cfg.data.packing and on_gpu,
        dataset_num_proc=None,
        # lorawiz tokenised and truncated the data (lorawiz.data.tokenize, cached); only packing is TRL's to do.
        dataset_kwargs=None if planned(cfg, "packing") else {"skip_prepare_dataset": True},
        shuffle_dataset=False,  # the Trainer's sampler shuffles each epoch with the seed
        **(extra or {}),
    )


def preference_config_class(method: str) -> type:
    """TRL's configuration class for a preference method."""
    import os

    if method == "orpo":
        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # lorawiz says which trainer runs, in the plan
        from trl.experimental.orpo import ORPOConfig

        return ORPOConfig
    from trl import DPOConfig, KTOConfig

    return DPOConfig if method == "dpo" else KTOConfig


def training_arguments(cfg: Any, *, output_dir: str, on_gpu: bool, train_rows: int, world_size: int,
                       liger: bool) -> dict[str, Any]:
    """transformers' TrainingArguments for this run, as keyword arguments (every TRL config takes them)."""
    train, log = cfg.training, cfg.logging
    steps = {}
    if log.eval_strategy == "steps":
        steps["eval_steps"] = planned(cfg, "eval_steps")
    if log.save_strategy == "steps":
        steps["save_steps"] = planned(cfg, "save_steps")
    checkpointing = trainer_gradient_checkpointing(cfg)
    return dict(
        output_dir=output_dir,
        num_train_epochs=float(planned(cfg, "num_train_epochs")),
        max_steps=trainer_max_steps(cfg, train_rows, world_size),
        per_device_train_batch_size=planned(cfg, "per_device_train_batch_size"),
        per_device_eval_batch_size=planned(cfg, "per_device_eval_batch_size"),
        gradient_accumulation_steps=planned(cfg, "gradient_accumulation_steps"),
        learning_rate=planned(cfg, "learning_rate"),
        weight_decay=train.weight_decay,
        max_grad_norm=train.max_grad_norm,
        lr_scheduler_type=planned(cfg, "lr_scheduler_type"),
        lr_scheduler_kwargs=dict(train.lr_scheduler_kwargs or {}),
        **({"tf32": cfg.optimization.tf32} if cfg.optimization.tf32 is not None else {}),
        warmup_steps=warmup(cfg),
        seed=train.seed,
        data_seed=train.seed,
        bf16=planned(cfg, "bf16"), fp16=planned(cfg, "fp16"),
        gradient_checkpointing=checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if checkpointing else None,
        optim=planned(cfg, "optim"),
        logging_steps=planned(cfg, "logging_steps"),
        logging_first_step=True,
        logging_nan_inf_filter=False,  # the NaN guard must see a NaN loss, not a filtered one
        eval_strategy=log.eval_strategy,
        save_strategy=log.save_strategy,
        save_total_limit=log.save_total_limit,
        load_best_model_at_end=log.load_best_model_at_end,
        metric_for_best_model=log.metric_for_best_model,
        greater_is_better=log.greater_is_better,
        report_to=list(log.report_to) or "none",
        run_name=log.run_name,
        # the Trainer creates the repository (with its visibility) and pushes checkpoints as hub_strategy says;
        # the finished run is pushed by lorawiz.publish, with its model card (train/outputs.py)
        push_to_hub=log.push_to_hub, hub_model_id=log.hub_model_id, hub_private_repo=log.hub_private_repo,
        hub_strategy=log.hub_strategy,
        dataloader_num_workers=cfg.dataloader.dataloader_num_workers,
        remove_unused_columns=cfg.dataloader.remove_unused_columns,
        # Rows of similar length in one batch: the padding a batch carries shrinks from the long tail's to a few %.
        train_sampling_strategy="group_by_length" if planned(cfg, "group_by_length") else "random",
        disable_tqdm=True,  # the dashboard (or the plain log) shows progress
        include_num_input_tokens_seen="non_padding",
        use_cpu=not on_gpu,
        use_liger_kernel=liger and on_gpu,
        **steps,
    )
