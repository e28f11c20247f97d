"""The knob table: every configuration value once, with its section, type, default, range and help text.

Plain data and the standard library only, so that `--help` and `config show` read the help text without
importing pydantic. A default of None on an `auto` knob means "the recommender decides" (hardware- and
data-dependent values); every other default is the value the trainer receives when nobody sets one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

TASKS = ("chat", "instruction", "code", "domain", "classification")
METHODS = ("sft", "dpo", "kto", "orpo")
OPTIMIZERS = (
    "adamw_torch",
    "adamw_torch_fused",
    "adamw_8bit",
    "adamw_bnb_8bit",
    "paged_adamw_8bit",
    "paged_adamw_32bit",
    "adafactor",
    "sgd",
    "lion_8bit",
    "paged_lion_8bit",
)
SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "warmup_stable_decay",
)
DTYPES = ("auto", "bfloat16", "float16", "float32")
PARALLELISMS = ("ddp", "fsdp", "deepspeed")
HUB_STRATEGIES = ("end", "every_save", "checkpoint", "all_checkpoints")  # TrainingArguments.hub_strategy's values
PARALLELISM_ALIASES = {"dp": "ddp", "data_parallel": "ddp", "fsdp2": "fsdp", "zero3": "deepspeed",
                       "deepspeed_zero3": "deepspeed", "zero-3": "deepspeed", "ds": "deepspeed"}


@dataclass(frozen=True)
class Knob:
    """One configuration value: its name, type, default and the trade-off it controls."""

    name: str
    type: Any
    default: Any
    help: str
    auto: bool = False  # None means "the recommender decides"
    bounds: Mapping[str, float] = field(default_factory=dict)  # pydantic constraints: gt, ge, lt, le

    @property
    def nullable(self) -> bool:
        return self.default is None


def _k(name: str, type_: Any, default: Any, help_: str, *, auto: bool = False, **bounds: float) -> Knob:
    return Knob(name, type_, default, help_, auto=auto, bounds=bounds)


SECTIONS: dict[str, tuple[Knob, ...]] = {
    "model": (
        _k("model_name_or_path", str, None, "Base model: a Hugging Face Hub id or a local directory."),
        _k("cache_dir", str, None, "Where downloaded models are cached (default: the Hugging Face cache); tokenised "
           "data goes to its lorawiz-data folder unless dataset_cache_dir says otherwise."),
        _k("trust_remote_code", bool, False, "Run model code shipped with the checkpoint. Only for repos you trust."),
        _k("load_in_4bit", bool, None, "4-bit QLoRA base: about 4x less weight memory, slightly slower steps.",
           auto=True),
        _k("load_in_8bit", bool, False, "8-bit base: 2x less weight memory than 16-bit, slower than 4-bit QLoRA."),
        _k("bnb_4bit_quant_type", Literal["nf4", "fp4"], "nf4",
           "4-bit data type: nf4 (QLoRA paper, better quality) or fp4."),
        _k("bnb_4bit_compute_dtype", Literal[DTYPES], "auto",
           "Dtype of the 4-bit matmuls: auto follows bf16/fp16, float32 is slowest."),
        _k("bnb_4bit_use_double_quant", bool, True,
           "Quantize the quantization constants too: saves ~0.4 bit/param at no quality cost."),
        _k("from_adapter", str, None, "Start from a trained adapter (a lorawiz run folder or an adapter folder, e.g. "
           "the SFT run before DPO): its LoRA weights train on, with its rank and targets; for dpo the reference "
           "is that adapter as loaded."),
        _k("pad_token", str, None, "The tokenizer's padding token, a token it already has (e.g. <|end_of_text|>; "
           "default: its own, else its end-of-sequence token)."),
    ),
    "data": (
        _k("train_file", str, None, "Training data: a JSONL, JSON, CSV/TSV or Parquet file."),
        _k("datasets", list[dict[str, Any]], None, "Several training sources mixed when the run loads its data "
           "(as `lorawiz mix` does), instead of train_file: [{path: domain.jsonl, weight: 0.8}, {path: general.jsonl, "
           "weight: 0.2, max_samples: 5000}]; weight is a share of the mix, max_samples caps a source's rows."),
        _k("validation_file", str, None, "Validation data; without it, val_split of the training data is held out."),
        _k("val_split", float, 0.1, "Share of the training data held out for validation when no validation_file.",
           ge=0.0, lt=1.0),
        _k("max_seq_length", int, None, "Longest sequence in tokens: longer rows are truncated; memory grows with it.",
           auto=True, gt=0),
        _k("packing", bool, None, "Pack several short rows into one sequence: faster on short data, no padding.",
           auto=True),
        _k("group_by_length", bool, None, "Batch rows of similar length together: little padding, so faster steps "
           "(measured in bench/train_speed.py); the order stays random between groups.", auto=True),
        _k("assistant_only_loss", bool, True,
           "Learn from the assistant's answers only (true), or from every token, prompts included (false)."),
        _k("system_prompt", str, None, "System prompt added to rows that have none."),
        _k("dataset_cache_dir", str, None, "Where tokenised data is cached for the next run (default: <cache_dir>/"
           "lorawiz-data with --cache-dir, else the datasets cache's lorawiz folder)."),
        _k("task", Literal[TASKS], "chat",
           "What the data teaches: chat, instruction, code, domain (adaptation) or classification."),
        _k("head", Literal["lm", "sequence"], "lm", "How a classification run answers: lm (the label written as "
           "the answer: any chat model serves it) or sequence (a classification head on the last token of the "
           "prompt: one forward pass, scores over the labels only, no generation)."),
        _k("labels", list[str], None, "The classes of a sequence head, in order (default: the distinct answers of "
           "the training data, sorted)."),
    ),
    "lora": (
        _k("lora_r", int, None, "LoRA rank: higher = more capacity, memory and risk of overfitting.",
           auto=True, gt=0),
        _k("lora_alpha", int, None, "LoRA scale numerator (update scale = alpha / r); recommender uses 2 x r.",
           auto=True, gt=0),
        _k("lora_dropout", float, None, "Dropout on the LoRA path: higher regularises small datasets.",
           auto=True, ge=0.0, lt=1.0),
        _k("lora_target_modules", Literal["all-linear"] | list[str], "all-linear",
           "Layers that get adapters: all-linear (best quality) or a list such as [q_proj, v_proj]."),
        _k("lora_bias", Literal["none", "all", "lora_only"], "none", "Which biases train: none keeps adapters small."),
        _k("use_dora", bool, False, "DoRA: weight-decomposed LoRA, a little better quality, ~20% slower."),
        _k("use_rslora", bool, False, "rank-stabilised scaling (alpha / sqrt(r)): helps at large ranks."),
        _k("modules_to_save", list[str], None,
           "Extra modules trained in full and saved (e.g. [lm_head, embed_tokens])."),
        _k("layers_to_transform", list[int], None, "Only these decoder layers get adapters (e.g. [20, 21, 22, 23]; "
           "default: every layer): fewer trainable parameters, less capacity."),
    ),
    "training": (
        _k("method", Literal[METHODS], "sft", "How the adapter learns: sft (supervised: the data's answers), dpo "
           "(preference pairs: the chosen answer over the rejected one, Rafailov et al. 2023, TRL's DPOTrainer) or "
           "kto (each answer on its own as desirable or not, Ethayarajh et al. 2024, TRL's KTOTrainer) or orpo "
           "(SFT on the chosen answer plus an odds-ratio penalty on the rejected one, no reference, Hong et al. "
           "2024, TRL's experimental ORPOTrainer)."),
        _k("beta", float, None, "DPO's and KTO's beta: how far the tuned model may move from the reference (higher "
           "keeps it closer); ORPO's lambda: the weight of its odds-ratio term. Preference methods only.",
           auto=True, gt=0.0),
        _k("learning_rate", float, None, "Peak learning rate: too high diverges, too low learns slowly.",
           auto=True, gt=0.0),
        _k("num_train_epochs", float, None, "Passes over the training data: more can overfit small datasets.",
           auto=True, gt=0.0),
        _k("max_steps", int, -1, "At most this many optimizer steps: the run ends at num_train_epochs or max_steps, "
           "whichever comes first; -1 means no cap.", ge=-1),
        _k("per_device_train_batch_size", int, None, "Rows per GPU per forward pass: the main lever on memory.",
           auto=True, gt=0),
        _k("per_device_eval_batch_size", int, None, "Rows per GPU per evaluation pass (default: the training one).",
           auto=True, gt=0),
        _k("gradient_accumulation_steps", int, None, "Micro-batches per optimizer step: larger batches, same memory.",
           auto=True, gt=0),
        _k("warmup_ratio", float, None, "Share of steps spent warming up the learning rate (or set warmup_steps).",
           auto=True, ge=0.0, lt=1.0),
        _k("warmup_steps", int, None, "Warm-up steps, instead of warmup_ratio.", ge=0),
        _k("weight_decay", float, 0.0, "L2 penalty on the LoRA weights: a little helps against overfitting.", ge=0.0),
        _k("max_grad_norm", float, 1.0, "Gradient clipping: lower is steadier, 0.3 is the QLoRA paper's value.",
           ge=0.0),
        _k("lr_scheduler_type", Literal[SCHEDULERS], None, "Learning-rate schedule after warm-up.", auto=True),
        _k("lr_scheduler_kwargs", dict[str, float | int | str], None, "The schedule's own settings, e.g. {min_lr: "
           "1.0e-5} (cosine_with_min_lr), {num_cycles: 3} (cosine_with_restarts), {num_decay_steps: 200} "
           "(warmup_stable_decay), {lr_end: 1.0e-7, power: 2} (polynomial)."),
        _k("seed", int, 42, "Random seed for initialisation, shuffling and the validation split."),
        _k("early_stopping_patience", int, 3,
           "Evaluations without improvement before stopping; 0 disables early stopping.", ge=0),
        _k("early_stopping_threshold", float, 0.0,
           "Relative improvement an evaluation must beat to count as better.", ge=0.0, lt=1.0),
    ),
    "optimization": (
        _k("bf16", bool, None, "bfloat16 mixed precision: fast and stable on compute capability >= 8.0.", auto=True),
        _k("fp16", bool, None, "float16 mixed precision for older GPUs; can overflow, needs loss scaling.", auto=True),
        _k("tf32", bool, None, "TF32 matmuls for the fp32 parts of training (Ampere GPUs and newer): faster, a few "
           "bits less precise; unset leaves torch's setting."),
        _k("gradient_checkpointing", bool, None, "Recompute activations: much less memory, ~30% slower steps.",
           auto=True),
        _k("optim", Literal[OPTIMIZERS], None,
           "Optimizer: paged_adamw_8bit saves memory on CUDA, adamw_torch elsewhere.", auto=True),
        _k("parallelism", Literal[PARALLELISMS], None, "How several GPUs share a run: ddp (each GPU trains a full "
           "copy: fastest where the model fits one GPU), fsdp (FSDP2 divides the model among the GPUs), deepspeed "
           "(ZeRO-3); auto (unset) takes ddp when the model fits one GPU, else sharding.", auto=True),
        _k("cpu_offload", bool, None, "With fsdp or deepspeed, keep the sharded weights, gradients and optimizer "
           "states in CPU RAM: bigger models on small GPUs, several times slower steps.", auto=True),
    ),
    "logging": (
        _k("output_dir", str, "outputs/lorawiz-run", "Where the adapter, checkpoints, logs and metrics go."),
        _k("logging_dir", str, None, "Where the TensorBoard events go (default: <output_dir>/logs)."),
        _k("logging_steps", int, None, "Log loss, learning rate and speed every N steps.", auto=True, gt=0),
        _k("eval_strategy", Literal["no", "steps", "epoch"], "steps",
           "When to evaluate: every eval_steps, per epoch, or never."),
        _k("eval_steps", int, None, "Evaluate every N steps (eval_strategy: steps).", auto=True, gt=0),
        _k("evals_per_epoch", int, None, "Evaluations an epoch, instead of eval_steps (Axolotl's key).", gt=0),
        _k("save_strategy", Literal["no", "steps", "epoch", "best"], "steps",
           "When to checkpoint: every save_steps, per epoch, at each new best, or never."),
        _k("save_steps", int, None, "Checkpoint every N steps (save_strategy: steps).", auto=True, gt=0),
        _k("saves_per_epoch", int, None, "Checkpoints an epoch, instead of save_steps (Axolotl's key).", gt=0),
        _k("save_total_limit", int, 3, "Checkpoints kept on disk (the best one is always kept).", gt=0),
        _k("load_best_model_at_end", bool, True, "Reload the best checkpoint by metric_for_best_model at the end."),
        _k("metric_for_best_model", str, "eval_loss",
           "Metric that picks the best checkpoint and drives early stopping."),
        _k("greater_is_better", bool, None,
           "Whether a larger metric is better (derived from the metric name if unset)."),
        _k("report_to", list[str], ["tensorboard"], "Experiment trackers: tensorboard, wandb, mlflow (each needs "
           "its package: pip install 'lorawiz[wandb]'), several joined by commas, or none."),
        _k("run_name", str, None, "The run's name in the trackers (wandb, mlflow) and on its model card (default: "
           "the output folder's name)."),
        _k("push_to_hub", bool, False, "Upload the adapter, its model card and results to the Hugging Face Hub "
           "(hub_model_id) at the end of training; needs a token (hf auth login or HF_TOKEN)."),
        _k("hub_model_id", str, None, "The Hub repository to push to: namespace/name (yours or an organization's)."),
        _k("hub_private_repo", bool, True, "Create the Hub repository private (true) or public (false); an existing "
           "repository keeps its visibility."),
        _k("hub_strategy", Literal[HUB_STRATEGIES], "end", "What is pushed when: end (the finished run only), "
           "every_save (each checkpoint's adapter too), checkpoint (also the latest checkpoint folder, to resume "
           "elsewhere), all_checkpoints (every checkpoint folder)."),
    ),
    "dataloader": (
        _k("dataloader_num_workers", int, 0, "Background processes that prepare batches; 0 loads in the main process.",
           ge=0),
        _k("remove_unused_columns", bool, True, "Whether the trainer drops data columns the model does not take. "
           "Trains the same either way: lorawiz's tokenised data holds only the columns training uses."),
    ),
}

KNOBS: dict[str, Knob] = {k.name: k for knobs in SECTIONS.values() for k in knobs}
SECTION_OF: dict[str, str] = {k.name: section for section, knobs in SECTIONS.items() for k in knobs}

# Older names of our keys, read as the new ones (transformers renamed evaluation_strategy in 4.41).
RENAMED_KEYS = {"evaluation_strategy": "eval_strategy"}

# Names used by other tools or older transformers versions, mapped to ours for "did you mean".
KNOWN_ALIASES = {
    "max_seq_len": "max_seq_length",
    "lora_rank": "lora_r",
    "r": "lora_r",
    "alpha": "lora_alpha",
    "target_modules": "lora_target_modules",
    "model_name": "model_name_or_path",
    "base_model": "model_name_or_path",
    "use_4bit": "load_in_4bit",
    "use_8bit": "load_in_8bit",
    "lr": "learning_rate",
    "epochs": "num_train_epochs",
    "batch_size": "per_device_train_batch_size",
    "micro_batch_size": "per_device_train_batch_size",
    "dataset": "train_file",
    "eval_file": "validation_file",
    "sequence_len": "max_seq_length",
    "lora_target_linear": "lora_target_modules",
    "dataset_prepared_path": "dataset_cache_dir",
}

# Pairs where a higher layer setting one side clears the other side set by a lower layer
# (a file's warmup_ratio replaces a preset's warmup_steps); both set in one layer is an error.
EXCLUSIVE_PAIRS = (("warmup_ratio", "warmup_steps"), ("bf16", "fp16"), ("load_in_4bit", "load_in_8bit"))

DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32", "half": "float16", "float": "float32"}
LIST_KNOBS = ("lora_target_modules", "modules_to_save", "report_to", "layers_to_transform", "labels")

# What each schedule accepts in lr_scheduler_kwargs (transformers.optimization's schedule functions), and what it
# needs: one of the names in each tuple of `needs`.
SCHEDULER_KWARGS: dict[str, tuple[frozenset[str], tuple[tuple[str, ...], ...]]] = {
    "linear": (frozenset(), ()),
    "constant": (frozenset(), ()),
    "constant_with_warmup": (frozenset(), ()),
    "cosine": (frozenset({"num_cycles"}), ()),
    "cosine_with_restarts": (frozenset({"num_cycles"}), (("num_cycles",),)),
    "cosine_with_min_lr": (frozenset({"num_cycles", "min_lr", "min_lr_rate"}), (("min_lr", "min_lr_rate"),)),
    "polynomial": (frozenset({"lr_end", "power"}), ()),
    "inverse_sqrt": (frozenset({"timescale"}), ()),
    "reduce_lr_on_plateau": (frozenset({"factor", "patience", "threshold", "cooldown", "min_lr", "mode"}), ()),
    "warmup_stable_decay": (frozenset({"num_decay_steps", "num_stable_steps", "min_lr_ratio", "num_cycles",
                                       "warmup_type", "decay_type"}), (("num_decay_steps",),)),
}


def knob_help(name: str) -> str:
    """The help text of one knob, as `--help` shows it."""
    knob = KNOBS[name]
    return f"{knob.help} [{SECTION_OF[name]}.{name}]"


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """The closest known name, for "did you mean"."""
    if name in KNOWN_ALIASES:
        return KNOWN_ALIASES[name]
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def format_value(value: Any) -> str:
    """How a value reads in tables and messages: `2e-4`, `true`, `[q_proj, v_proj]`, `-` for unset."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-3:
            mantissa, exponent = f"{value:e}".split("e")
            return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    return str(value)
