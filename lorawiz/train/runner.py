"""`lorawiz train` as a library call: plan, prepare data, train with a backend, and never lose work.

The flow: resolve built-in names -> check the output folder -> plan (hardware, model, data) and fill every value
the user left to the recommender -> tokenise with the loss on assistant turns -> train, with checkpoints marked
complete, Ctrl-C/SIGTERM saving a checkpoint, a NaN guard, and one automatic restart after an out-of-memory
error with the next fallback -> write the adapter, tokenizer, config and results.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorawiz import __version__
from lorawiz.builtin import resolve_names
from lorawiz.data.writers import atomic_output
from lorawiz.errors import LorawizError
from lorawiz.train.quiet import hide_optional_kernel_warning

INTERRUPTED_EXIT = 130  # the shell's code for a run stopped by Ctrl-C
SECRET_WORDS = ("token", "secret", "password", "api_key")
RUN_FILES = ("lorawiz.yaml", "run.json", "metrics.jsonl", "training.log", "adapter_config.json")


@dataclass
class TrainRequest:
    values: dict[str, Any]
    sources: dict[str, str]
    backend: str = "auto"
    resume: str | None = None
    dry_run: bool = False
    overwrite: bool = False
    plain: bool = False
    hardware_spec: str | None = None
    argv: list[str] = field(default_factory=list)  # the command line, for the resume hint
    extra_args: dict[str, Any] = field(default_factory=dict)  # more SFTConfig settings (the demo's eval_on_start)


@dataclass
class TrainResult:
    output_dir: Path
    status: str  # done, interrupted, dry-run
    metrics: dict[str, Any] = field(default_factory=dict)
    best_checkpoint: str | None = None
    seconds: float = 0.0


def check_output_dir(output_dir: Path, resume: str | None, overwrite: bool) -> None:
    """Refuse to mix runs: a non-empty folder needs --resume (same run) or --overwrite (a lorawiz run only)."""
    if not output_dir.exists() or not any(output_dir.iterdir()):
        if resume:
            raise LorawizError(f"--resume: {output_dir} holds no run to resume.", hint="Start it without --resume.")
        return
    if resume:
        return
    is_run = any((output_dir / name).exists() for name in RUN_FILES) or any(output_dir.glob("checkpoint-*"))
    if not overwrite:
        raise LorawizError(f"{output_dir} already holds {'a training run' if is_run else 'files'}.",
                           hint="Resume it with --resume auto, replace it with --overwrite, or pick another "
                                "--output-dir.")
    if not is_run:
        raise LorawizError(f"{output_dir} is not empty and is not a lorawiz run; --overwrite only replaces runs.",
                           hint="Pick another --output-dir.")
    shutil.rmtree(output_dir)


def fill_from_plan(values: dict[str, Any], sources: dict[str, str], plan: Any) -> tuple[dict, dict]:
    """Take the recommender's value for every knob the user and the preset left open."""
    values, sources = dict(values), dict(sources)
    for name, choice in plan.values.items():
        if choice.source == "recommender" and name in values:
            if name == "warmup_ratio" and values.get("warmup_steps") is not None:
                continue  # the user chose warmup in steps
            values[name] = choice.value
            sources[name] = "recommender"
    if values.get("eval_strategy") == "no":
        values["eval_steps"] = None
    if values.get("save_strategy") == "steps" and values.get("eval_strategy") == "steps":
        values["save_steps"] = values.get("eval_steps") or values.get("save_steps")
    return values, sources


def redacted(values: dict[str, Any]) -> dict[str, Any]:
    return {k: ("<redacted>" if any(w in k.lower() for w in SECRET_WORDS) and v else v) for k, v in values.items()}


def write_config(output_dir: Path, values: dict[str, Any], sources: dict[str, str]) -> None:
    """lorawiz.yaml: the resolved configuration, sectioned, re-runnable with `lorawiz train lorawiz.yaml`."""
    import yaml

    from lorawiz.config import SECTION_OF

    sections: dict[str, dict[str, Any]] = {}
    for name, value in redacted(values).items():
        if name in SECTION_OF:
            sections.setdefault(SECTION_OF[name], {})[name] = value
    header = (f"# lorawiz {__version__}: the resolved configuration of this run (secrets redacted).\n"
              f"# Re-run: lorawiz train {output_dir / 'lorawiz.yaml'} --output-dir NEW_DIR\n")
    with atomic_output(output_dir / "lorawiz.yaml", overwrite=True) as handle:
        handle.write(header)
        yaml.safe_dump(sections, handle, sort_keys=False)


def training_args(values: dict[str, Any], output_dir: Path, on_gpu: bool, extra: dict[str, Any] | None = None) -> Any:
    """TRL's SFTConfig from lorawiz's configuration (the names match transformers' where they exist)."""
    from trl import SFTConfig

    from lorawiz.train.backends.hf import flash_attention, liger_available

    warmup = values.get("warmup_steps")
    if warmup is None:
        warmup = float(values.get("warmup_ratio") or 0.0)  # transformers 5: a float below 1 is a ratio
    evaluating = values.get("eval_strategy", "no") != "no"
    report_to = [r for r in values.get("report_to") or [] if r != "none"]
    return SFTConfig(
        output_dir=str(output_dir),
        num_train_epochs=float(values.get("num_train_epochs") or 1),
        max_steps=int(values.get("max_steps") if values.get("max_steps") is not None else -1),
        per_device_train_batch_size=int(values["per_device_train_batch_size"]),
        per_device_eval_batch_size=int(values.get("per_device_eval_batch_size")
                                       or values["per_device_train_batch_size"]),
        gradient_accumulation_steps=int(values["gradient_accumulation_steps"]),
        learning_rate=float(values["learning_rate"]),
        weight_decay=float(values.get("weight_decay") or 0.0),
        max_grad_norm=float(values.get("max_grad_norm") or 1.0),
        lr_scheduler_type=values.get("lr_scheduler_type") or "cosine",
        warmup_steps=warmup,
        seed=int(values.get("seed") or 42),
        data_seed=int(values.get("seed") or 42),
        bf16=bool(values.get("bf16")), fp16=bool(values.get("fp16")),
        gradient_checkpointing=bool(values.get("gradient_checkpointing")),
        gradient_checkpointing_kwargs={"use_reentrant": False} if values.get("gradient_checkpointing") else None,
        optim=values.get("optim") or "adamw_torch",
        logging_steps=int(values.get("logging_steps") or 10),
        logging_first_step=True,
        logging_nan_inf_filter=False,  # the NaN guard must see a NaN loss, not a filtered one
        eval_strategy=values.get("eval_strategy") or "no",
        eval_steps=int(values["eval_steps"]) if evaluating and values.get("eval_steps") else None,
        save_strategy=values.get("save_strategy") or "steps",
        save_steps=int(values.get("save_steps") or values.get("eval_steps") or 500),
        save_total_limit=values.get("save_total_limit"),
        load_best_model_at_end=bool(values.get("load_best_model_at_end")) and evaluating,
        metric_for_best_model=values.get("metric_for_best_model") or "eval_loss",
        greater_is_better=values.get("greater_is_better"),
        report_to=report_to or "none",
        dataloader_num_workers=int(values.get("dataloader_num_workers") or 0),
        max_length=int(values["max_seq_length"]),
        packing=bool(values.get("packing")),
        # Rows of similar length in one batch: the padding a batch carries shrinks from the long tail's to a few %.
        train_sampling_strategy="group_by_length" if values.get("group_by_length") and not values.get("packing")
        else "random",
        # Without packing, FlashAttention can take the batch as one unpadded sequence (no compute on padding).
        padding_free=flash_attention(values) and not values.get("packing") and on_gpu,
        dataset_num_proc=None,
        disable_tqdm=True,  # the dashboard (or the plain log) shows progress
        include_num_input_tokens_seen="non_padding",
        use_cpu=not on_gpu,
        use_liger_kernel=liger_available() if on_gpu else False,
        shuffle_dataset=False,  # the Trainer's sampler shuffles each epoch with the seed
        **(extra or {}),
    )


# ---------------------------------------------------------------------------------------------------------
# Faults


class StopRequest:
    """Ctrl-C or SIGTERM: save a checkpoint at the end of the current step and stop. A second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        if self.signal_name is not None:  # asked twice: stop now
            self.restore()
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def callback(self) -> Any:
        from transformers import TrainerCallback

        request = self

        class SaveAndStop(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if request.signal_name is not None:
                    control.should_save = True
                    control.should_training_stop = True

        return SaveAndStop()


FALLBACKS = ("halve the micro-batch", "gradient checkpointing", "4-bit", "shorter sequences")


def next_fallback(values: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """The next setting to try after running out of GPU memory, keeping the effective batch."""
    values = dict(values)
    micro = int(values["per_device_train_batch_size"])
    if micro > 1:
        values["per_device_train_batch_size"] = micro // 2
        values["per_device_eval_batch_size"] = max(1, int(values.get("per_device_eval_batch_size") or micro) // 2)
        values["gradient_accumulation_steps"] = int(values["gradient_accumulation_steps"]) * 2
        return values, f"micro-batch {micro} -> {micro // 2}, accumulation doubled to " \
                       f"{values['gradient_accumulation_steps']} (same effective batch)"
    if not values.get("gradient_checkpointing"):
        values["gradient_checkpointing"] = True
        return values, "gradient checkpointing on"
    if not (values.get("load_in_4bit") or values.get("load_in_8bit")):
        values["load_in_4bit"] = True
        return values, "base model loaded in 4 bits (QLoRA)"
    seq = int(values["max_seq_length"])
    if seq > 128:
        values["max_seq_length"] = seq // 2
        return values, f"max_seq_length {seq} -> {seq // 2}"
    return None


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


# ---------------------------------------------------------------------------------------------------------
# The run


def run_training(request: TrainRequest) -> TrainResult:
    from lorawiz.console import get_console, say
    from lorawiz.planning import gather, make_plan, render_plan

    started = time.monotonic()
    hide_optional_kernel_warning()
    if not request.values.get("model_name_or_path"):
        raise LorawizError("no model to train.", hint="Pass --model (a hub id, a local folder, or builtin:tiny).")
    if not request.values.get("train_file"):
        raise LorawizError("no training data.", hint="Pass --data FILE (any shape lorawiz format reads), or "
                                                     "builtin:triage.")
    backend_name, why, backend, hardware = _pick_backend(request)  # before transformers: unsloth patches it
    from lorawiz.train.quiet import quiet_libraries

    quiet_libraries(request.plain)
    values = resolve_names(request.values)
    output_dir = Path(values.get("output_dir") or "outputs/lorawiz-run").expanduser()
    values["output_dir"] = str(output_dir)
    is_main = int(os.environ.get("RANK", "0")) == 0
    if is_main and not request.dry_run:
        check_output_dir(output_dir, request.resume, request.overwrite)

    inputs = gather(values, request.sources, hardware=hardware)
    plan = make_plan(inputs)
    values, sources = fill_from_plan(values, request.sources, plan)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and sources.get("gradient_accumulation_steps") == "recommender" and inputs.hardware.is_cpu_only:
        # the plan counted one device; CPU processes share the effective batch like GPUs do
        values["gradient_accumulation_steps"] = max(1, math.ceil(int(values["gradient_accumulation_steps"]) / world))
    if is_main:
        get_console().print(render_plan(inputs, plan, request.plain), soft_wrap=request.plain)
        say(f"backend: {backend_name} ({why})")
    if not request.dry_run and is_main:
        output_dir.mkdir(parents=True, exist_ok=True)

    data = _prepare_data(values, inputs)
    if request.dry_run:
        _show_dry_run(data, values)
        return TrainResult(output_dir, "dry-run", seconds=time.monotonic() - started)

    from lorawiz.train.checkpoints import (
        check_fingerprints,
        find_resume_checkpoint,
        fingerprint_config,
        fingerprint_files,
        write_run_info,
    )

    config_fp = fingerprint_config(values)
    data_fp = fingerprint_files([values["train_file"], values.get("validation_file")])
    checkpoint = None
    if request.resume:
        checkpoint = find_resume_checkpoint(output_dir, request.resume)
        check_fingerprints(output_dir, config_fp, data_fp)
        say(f"resuming from {checkpoint}")
    if is_main:
        write_config(output_dir, values, sources)
        write_run_info(output_dir, {"lorawiz": __version__, "config_fingerprint": config_fp,
                                    "data_fingerprint": data_fp, "backend": backend_name,
                                    "command": request.argv})
    return _train_with_fallback(request, values, inputs, backend, backend_name, data, checkpoint,
                                (config_fp, data_fp), started, is_main)


@dataclass
class PreparedData:
    tokenizer: Any
    train: Any
    eval: Any
    stats: dict[str, Any]
    first: dict[str, list[int]]


def _pick_backend(request: TrainRequest) -> tuple[str, str, Any, Any]:
    """Choose the backend from the hardware and the model's architecture, and import it (unsloth comes first).
    Returns the name, why, the backend and the hardware profile (which the plan reuses)."""
    from lorawiz.catalog import load_model_facts
    from lorawiz.hardware import parse_hardware_spec, probe
    from lorawiz.train.backends.base import choose_backend, get_backend

    output_dir = request.values.get("output_dir") or "."
    hardware = parse_hardware_spec(request.hardware_spec) if request.hardware_spec else probe(output_dir)
    model = request.values["model_name_or_path"]
    architecture = "llama" if model == "builtin:tiny" else load_model_facts(model).architecture
    name, why = choose_backend(request.backend, hardware, architecture)
    return name, why, get_backend(name), hardware


def _prepare_data(values: dict[str, Any], inputs: Any) -> PreparedData:
    from transformers import AutoTokenizer

    from lorawiz.data.formats import ConvertOptions
    from lorawiz.train.dataset import ensure_chat_template, holdout_split, read_rows, tokenize_rows

    opts = ConvertOptions(system=values.get("system_prompt"))
    rows = read_rows(values["train_file"], opts)
    evaluating = values.get("eval_strategy") != "no"
    if values.get("validation_file"):
        val_rows = read_rows(values["validation_file"], opts)
    elif evaluating and float(values.get("val_split") or 0) > 0:
        rows, val_rows = holdout_split(rows, float(values["val_split"]), int(values.get("seed") or 42))
    else:
        val_rows = []
    tokenizer = AutoTokenizer.from_pretrained(values["model_name_or_path"],
                                              trust_remote_code=bool(values.get("trust_remote_code")),
                                              cache_dir=values.get("cache_dir"))
    ensure_chat_template(tokenizer)
    max_len = int(values["max_seq_length"])
    assistant_only = values.get("assistant_only_loss", True) is not False
    train = tokenize_rows(tokenizer, rows, max_len, assistant_only)
    val = tokenize_rows(tokenizer, val_rows, max_len, assistant_only) if val_rows else None
    if not train.examples:
        raise LorawizError("no training example has an answer token left within max_seq_length.",
                           hint="Raise --max-seq-length, or check that rows end with an assistant answer.")
    from datasets import Dataset

    stats = {"train_rows": len(train.examples), "val_rows": len(val.examples) if val else 0,
             "truncated": train.truncated, "dropped": train.dropped, "trained_tokens": train.trained_tokens,
             "total_tokens": train.total_tokens}
    return PreparedData(tokenizer, Dataset.from_list(train.examples),
                        Dataset.from_list(val.examples) if val and val.examples else None, stats,
                        train.examples[0])


def _show_dry_run(data: PreparedData, values: dict[str, Any]) -> None:
    from rich.text import Text

    from lorawiz.console import get_console, is_plain, say
    from lorawiz.train.dataset import show_example

    s = data.stats
    say(f"data: {s['train_rows']:,} training and {s['val_rows']:,} validation examples; {s['truncated']:,} "
        f"truncated at {values['max_seq_length']}, {s['dropped']:,} dropped (no answer left)")
    pieces = show_example(data.tokenizer, data.first)
    plain = is_plain()
    say("first example, as the model sees it (" + ("trained tokens in [brackets]" if plain else
                                                     "trained tokens highlighted") + "):")
    line = Text()
    for token, trained in pieces:
        if plain:
            line.append(f"[{token}]" if trained else token)
        else:
            line.append(token, style="bold black on green" if trained else "dim")
    get_console().print(line, soft_wrap=True, markup=False)
    trained = sum(1 for _, t in pieces if t)
    which = "the assistant's answers" if values.get("assistant_only_loss", True) is not False else "every token"
    say(f"{trained} of {len(pieces)} tokens are trained on ({which}); dry run: nothing trained")


def _train_with_fallback(request, values, inputs, backend, backend_name, data, checkpoint, fingerprints,
                         started, is_main) -> TrainResult:
    from lorawiz.console import say

    restarted = False
    while True:
        try:
            return _train_once(request, values, inputs, backend, backend_name, data, checkpoint, fingerprints,
                               started, is_main)
        except Exception as exc:
            if not is_out_of_memory(exc) or restarted:
                if is_out_of_memory(exc):
                    fallback = next_fallback(values)
                    raise LorawizError("out of GPU memory again after one automatic restart.",
                                       hint=f"Try: {fallback[1]}" if fallback else "Use a smaller model or a "
                                                                                   "bigger GPU.") from exc
                raise
            fallback = next_fallback(values)
            if fallback is None:
                raise LorawizError("out of GPU memory with the leanest settings.",
                                   hint="Use a smaller model, shorter sequences, or a bigger GPU.") from exc
            values, change = fallback
            restarted = True
            if is_main:
                write_config(Path(values["output_dir"]), values, {})  # lorawiz.yaml re-runs what actually ran
            _free_memory()
            from lorawiz.train.checkpoints import complete_checkpoints

            done = complete_checkpoints(Path(values["output_dir"]))
            checkpoint = done[-1] if done else checkpoint
            say(f"out of memory: restarting once with {change}"
                + (f", from {checkpoint.name}" if checkpoint else ""))
            if "max_seq_length" in change or "4 bits" in change:
                data = _prepare_data(values, inputs)


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _train_once(request, values, inputs, backend, backend_name, data, checkpoint, fingerprints, started,
                is_main) -> TrainResult:
    from lorawiz.console import say
    from lorawiz.train.callbacks import EarlyStopping, FaultInjection, NonFiniteLossGuard
    from lorawiz.train.checkpoints import make_marker_callback
    from lorawiz.train.monitor import TrainMonitor

    output_dir = Path(values["output_dir"])
    on_gpu = not inputs.hardware.is_cpu_only
    args = training_args(values, output_dir, on_gpu, request.extra_args)
    from transformers import set_seed

    set_seed(int(values.get("seed") or 42))  # LoRA's initial weights too: same seed, same run
    loaded = backend.load(values)
    for note in loaded.notes:
        say(f"note: {note}")
    monitor = TrainMonitor(output_dir, plain=request.plain, model_name=inputs.model.name, backend=backend_name,
                           is_main=is_main)
    guard = NonFiniteLossGuard(monitor=monitor)
    stop = StopRequest()
    callbacks = [monitor, guard, make_marker_callback(*fingerprints), stop.callback()]
    patience = int(values.get("early_stopping_patience") or 0)
    if patience > 0 and data.eval is not None:
        callbacks.append(EarlyStopping(patience, float(values.get("early_stopping_threshold") or 0.0),
                                       metric=values.get("metric_for_best_model") or "eval_loss",
                                       greater_is_better=bool(values.get("greater_is_better")), monitor=monitor))
    fault = _fault_injection(FaultInjection)
    if fault is not None:
        callbacks.append(fault)
    if data.eval is None:
        args.eval_strategy = "no"
        args.load_best_model_at_end = False
    trainer = backend.trainer(loaded, data.train, data.eval, args, callbacks)
    monitor.attach(trainer)  # drops the Trainer's own printer/progress callbacks
    stop.install()
    try:
        result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except BaseException as exc:
        monitor.close(exc)
        raise
    finally:
        stop.restore()
        monitor.close()
    state = trainer.state
    if getattr(guard, "tripped_at_step", None) is not None:
        from lorawiz.train.checkpoints import complete_checkpoints

        done = complete_checkpoints(output_dir)
        raise LorawizError(
            f"the loss became {getattr(guard, 'value', 'NaN')} at step {guard.tripped_at_step}; training stopped.",
            hint="Likely causes: a learning rate too high (try half), fp16 overflow (use bf16 or fp32), or bad rows "
                 "(check with lorawiz inspect). " + (f"The last good checkpoint is {done[-1]}." if done else
                                                     "No checkpoint was saved before it."))
    if stop.signal_name is not None:
        command = _resume_command(request)
        say(f"stopped by {stop.signal_name} at step {state.global_step}; a checkpoint was saved in {output_dir}.")
        say(f"resume with: {command}")
        raise SystemExit(INTERRUPTED_EXIT)
    if is_main:
        _save_outputs(trainer, loaded, values, result, output_dir, inputs, backend_name, data)
    return TrainResult(output_dir, "done", dict(result.metrics), state.best_model_checkpoint,
                       time.monotonic() - started)


_FAULT: list[Any] = []  # the one FaultInjection of this process: a fault fires once, not again after a restart


def _fault_injection(factory: Any) -> Any:
    if not _FAULT and os.environ.get("LORAWIZ_FAULT"):
        _FAULT.append(factory(os.environ["LORAWIZ_FAULT"]))
    return _FAULT[0] if _FAULT else None


def _resume_command(request: TrainRequest) -> str:
    argv = [a for a in request.argv if a not in ("--overwrite",)]
    if "--resume" not in argv:
        argv += ["--resume", "auto"]
    return "lorawiz " + " ".join(shlex.quote(a) for a in argv)


def _save_outputs(trainer, loaded, values, result, output_dir: Path, inputs, backend_name, data) -> None:
    """The adapter (PEFT form), tokenizer, all_results.json and a short model card."""
    from lorawiz.console import say

    trainer.save_model(str(output_dir))  # adapter_config.json + adapter_model.safetensors (the best, if loaded)
    loaded.tokenizer.save_pretrained(str(output_dir))
    metrics = dict(result.metrics)
    evals = [entry for entry in trainer.state.log_history if "eval_loss" in entry]
    if evals:  # the kept model's evaluation: the best one when it was loaded at the end, else the last
        kept = trainer.state.best_metric if trainer.args.load_best_model_at_end else None
        metrics["eval_loss"] = kept if kept is not None else evals[-1]["eval_loss"]
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    metrics.update({"final_loss": losses[-1] if losses else None,
                    "train_rows": data.stats["train_rows"], "val_rows": data.stats["val_rows"],
                    "best_checkpoint": trainer.state.best_model_checkpoint, "global_step": trainer.state.global_step})
    with atomic_output(output_dir / "all_results.json", overwrite=True) as handle:
        json.dump(_jsonable(metrics), handle, indent=2)
    _write_model_card(output_dir, values, metrics, inputs, backend_name)
    say(f"saved the adapter, tokenizer and results in {output_dir}")


def _jsonable(metrics: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        out[key] = value
    return out


def _write_model_card(output_dir: Path, values, metrics, inputs, backend_name) -> None:
    eval_loss = metrics.get("eval_loss")
    lines = [
        "---", f"base_model: {inputs.model.name}", "library_name: peft", "tags: [lora, lorawiz]", "---", "",
        f"# LoRA adapter for {inputs.model.name}", "",
        f"Trained with lorawiz {__version__} ({backend_name} backend) on `{values['train_file']}`.", "",
        f"- LoRA rank {values['lora_r']}, alpha {values['lora_alpha']}, targets {values.get('lora_target_modules')}",
        f"- {'4-bit QLoRA' if values.get('load_in_4bit') else '16-bit LoRA'}, learning rate {values['learning_rate']}, "
        f"{values.get('num_train_epochs')} epochs, max_seq_length {values['max_seq_length']}",
        f"- steps: {metrics.get('global_step')}; final training loss: {metrics.get('train_loss')}"
        + (f"; evaluation loss: {eval_loss}" if eval_loss is not None else ""),
        "", "Load it with:", "", "```python", "from peft import PeftModel",
        "from transformers import AutoModelForCausalLM", "",
        f'base = AutoModelForCausalLM.from_pretrained("{inputs.model.name}")',
        f'model = PeftModel.from_pretrained(base, "{output_dir}")', "```", "",
        "The full configuration is in `lorawiz.yaml`; re-run it with `lorawiz train lorawiz.yaml`.", "",
    ]
    with atomic_output(output_dir / "README.md", overwrite=True) as handle:
        handle.write("\n".join(lines))
