"""`lorawiz lr-find` as a library call: a learning-rate range test on the run's own model, data and settings.

The run is planned as `lorawiz train` plans it (batch, accumulation, sequence length, rank, precision, optimizer),
then trained for a short sweep with the learning rate rising exponentially each optimizer step, from a freshly
initialised adapter, through the same backend and trainer; nothing is saved (the trainer works in a temporary
folder). The arithmetic (smoothing, stopping, the suggestion rules) is lorawiz.lr_range's.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorawiz.errors import LorawizError
from lorawiz.lr_range import SUGGESTED_RULE, Suggestion, Sweep, falling_region, round_rate, suggestions, sweep_rate

START, END, STEPS = 1e-7, 10.0, 100  # fastai's lr_find defaults: 1e-7 to 10 in 100 steps
MIN_STEPS = 10


@dataclass
class LrFindRequest:
    config: Any  # ResolvedConfig, as for train
    start: float = START
    end: float = END
    steps: int = STEPS
    backend: str = "auto"
    plain: bool = False
    say: Callable[[str], None] = lambda text: None
    progress: Callable[[int, int, float, float], None] = lambda step, steps, rate, smoothed: None


@dataclass
class LrFindResult:
    sweep: Sweep
    found: dict[str, Suggestion]
    configured: float  # the learning rate the run would train with, and where it came from
    configured_source: str
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # what lorawiz changed to run here
    backend: str = "hf"
    seconds: float = 0.0
    resolved: Any = None  # the planned configuration (before the sweep's own settings)

    @property
    def suggestion(self) -> Suggestion | None:
        return self.found.get(SUGGESTED_RULE)

    @property
    def suggested_rate(self) -> float | None:
        return round_rate(self.suggestion.rate) if self.suggestion else None

    def as_dict(self) -> dict[str, Any]:
        region = falling_region(self.sweep)
        return {
            "suggested_learning_rate": self.suggested_rate,
            "rule": SUGGESTED_RULE if self.suggestion else None,
            "rules": {name: found.as_dict() for name, found in self.found.items()},
            "configured_learning_rate": self.configured, "configured_source": self.configured_source,
            "falling_region": list(region) if region else None,
            "start": self.sweep.start, "end": self.sweep.end, "steps": self.sweep.steps,
            "steps_run": len(self.sweep.rates), "stopped_early": self.sweep.stopped or None,
            "rates": self.sweep.rates, "losses": self.sweep.losses, "smoothed_losses": self.sweep.smoothed,
            "settings": self.settings, "notes": self.notes, "backend": self.backend,
            "seconds": round(self.seconds, 2),
        }


def check_sweep(start: float, end: float, steps: int) -> None:
    if not (start > 0 and end > start and math.isfinite(end)):
        raise LorawizError(f"--start-lr {start:g} --end-lr {end:g}: the sweep must rise from a positive rate.",
                           hint=f"For example --start-lr {START:g} --end-lr {END:g}.")
    if steps < MIN_STEPS:
        raise LorawizError(f"--steps {steps}: a sweep needs at least {MIN_STEPS} steps to read a curve.",
                           hint=f"Use --steps {STEPS} (the default) or more.")


def find_learning_rate(request: LrFindRequest) -> LrFindResult:
    """Plan the run for this machine, sweep the learning rate over real batches, and read the suggestions."""
    from lorawiz.libraries import hide_optional_kernel_warning, quiet_libraries
    from lorawiz.train.args import sharded
    from lorawiz.train.sources import with_sources

    check_sweep(request.start, request.end, request.steps)
    started = time.monotonic()
    hide_optional_kernel_warning()
    resolved = with_sources(request.config)
    cfg = resolved.config
    if not cfg.model.model_name_or_path:
        raise LorawizError("no model to sweep.", hint="Pass --model (a hub id, a local folder, or builtin:tiny).")
    if not cfg.data.train_file:
        raise LorawizError("no training data.", hint="Pass --data FILE, or builtin:triage.")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 or sharded(cfg):
        raise LorawizError(f"lr-find runs in one process; parallelism {cfg.optimization.parallelism} shards the "
                           "model across several.",
                           hint="Sweep with --set parallelism=ddp where the model fits one GPU (4-bit helps), "
                                "then train sharded with the rate found.")
    from lorawiz.hardware import machines_of, probe
    from lorawiz.train.backends import pick_backend

    machine = machines_of(probe("."))
    backend_name, _, backend = pick_backend(request.backend, cfg, machine)  # before transformers (unsloth)
    quiet_libraries(request.plain)
    planned, notes, run_data = _planned(resolved, machine, request)
    if sharded(planned.config):
        raise LorawizError("the model does not fit one GPU here: the plan shards it, and lr-find runs in one "
                           "process.", hint="Sweep in 4-bit (--load-in-4bit) or on a smaller sibling model.")
    sweep = Sweep(request.start, request.end, request.steps)
    _sweep(planned, run_data, backend, sweep, request, on_gpu=not machine.is_cpu_only)
    return LrFindResult(sweep, suggestions(sweep), planned.value("learning_rate"),
                        planned.source("learning_rate").explained, _settings(planned), notes, backend_name,
                        time.monotonic() - started, planned)


def _planned(resolved: Any, machine: Any, request: LrFindRequest) -> tuple[Any, list[str], Any]:
    """The configuration `lorawiz train` would run here, what it changed for this machine, and the tokenised
    data (lorawiz.train.data.RunData)."""
    from lorawiz.planning import adapt_to_machine, fill_from_plan, gather, make_plan
    from lorawiz.train.data import load_run_data

    progress = not request.plain and sys.stderr.isatty()
    run_data = load_run_data(resolved.config, 1, say=request.say, progress=progress)
    inputs = gather(resolved, hardware=machine, tokenised=run_data.train, data_note=run_data.cache_note())
    filled = fill_from_plan(resolved, make_plan(inputs))
    from lorawiz.train.head import fill_labels

    filled = fill_labels(filled, run_data.train, run_data.tokenizer)  # a sequence head's classes, as train fills them
    filled, notes = adapt_to_machine(filled, machine, None, sharded_launch=False)
    return filled, notes, run_data


def sweep_config(planned: Any, steps: int, start: float) -> Any:
    """The planned configuration with the sweep's own settings: `steps` optimizer steps from `start` (the trainer
    multiplies it up each step), no warm-up, no evaluation, no checkpoints, no trackers, a log line per step. Its
    epochs are more than `steps` can use (an epoch is at least a step), so max_steps ends it and the data repeats
    when it holds fewer batches than the sweep takes."""
    from lorawiz.config.layers import adjusted

    changes = {"learning_rate": start, "lr_scheduler_type": "constant", "warmup_ratio": 0.0, "warmup_steps": None,
               "max_steps": steps, "num_train_epochs": float(steps + 1), "eval_strategy": "no",
               "save_strategy": "no", "load_best_model_at_end": False, "early_stopping_patience": 0,
               "report_to": [], "logging_steps": 1}
    why = adjusted("lr-find sweep")
    return planned.with_values({name: (value, why) for name, value in changes.items()})


def _sweep(planned: Any, run_data: Any, backend: Any, sweep: Sweep, request: LrFindRequest, on_gpu: bool) -> None:
    """Train `sweep.steps` optimizer steps with the rate rising exponentially, recording each step's loss."""
    from lorawiz.train import args as make
    from lorawiz.train.backends.hf import flash_attention, liger_available
    from lorawiz.train.data import prepare_data
    from lorawiz.train.monitor import drop_trainer_progress

    cfg = sweep_config(planned, sweep.steps, sweep.start).config
    data = prepare_data(cfg, run_data)
    with tempfile.TemporaryDirectory(prefix="lorawiz-lr-find-") as folder:
        args = make.trainer_config(cfg, output_dir=folder, on_gpu=on_gpu, train_rows=len(data.train),
                               flash_attention=flash_attention(cfg), liger=liger_available())
        make.set_seed(cfg)  # the adapter starts as train's does: freshly initialised from the seed
        loaded = backend.load(cfg)
        trainer = backend.trainer(loaded, data.train, None, args, [_recorder(sweep, request)],
                                  lengths=data.train_lengths)
        drop_trainer_progress(trainer)  # lr-find reports through request.progress
        _exponential(trainer, sweep)
        trainer.train()


def _recorder(sweep: Sweep, request: LrFindRequest) -> Any:
    from transformers import TrainerCallback

    class Recorder(TrainerCallback):
        """Each logged step's loss, paired with the rate that step trained at; stops the trainer on divergence."""

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
            if not logs or "loss" not in logs or len(sweep.rates) >= state.global_step:
                return
            rate = sweep_rate(sweep.start, sweep.end, sweep.steps, state.global_step - 1)
            if "learning_rate" in logs:  # the rate the trainer says this step took: the sweep's, or a bug
                check_rate(sweep, state.global_step, float(logs["learning_rate"]))
            if sweep.record(rate, float(logs["loss"])):
                control.should_training_stop = True
            request.progress(state.global_step, sweep.steps, rate, sweep.smoothed[-1])

    return Recorder()


def check_rate(sweep: Sweep, step: int, logged: float) -> None:
    """The rate the trainer logged for optimizer step `step` (from 1; transformers 5 logs the rate the step took,
    read before the scheduler moves on) must be the sweep's: anything else is a bug in lorawiz (the schedule did not
    reach the trainer), never a curve to read a suggestion off."""
    expected = sweep_rate(sweep.start, sweep.end, sweep.steps, step - 1)
    if not math.isclose(logged, expected, rel_tol=1e-4):
        raise RuntimeError(f"lr-find: the trainer's learning rate at step {step} is {logged:.3e}, not the sweep's "
                           f"{expected:.3e}")


def _exponential(trainer: Any, sweep: Sweep) -> None:
    """The trainer's schedule, replaced: step k trains at sweep_rate(k), the base rate (sweep.start) times a factor
    that reaches sweep.end / sweep.start at the last step. Every parameter group keeps its ratio to the base."""
    import torch

    def create_scheduler(num_training_steps: int, optimizer: Any = None) -> Any:
        if trainer.lr_scheduler is None:
            trainer.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer or trainer.optimizer,
                lambda step: sweep_rate(sweep.start, sweep.end, sweep.steps, step) / sweep.start)
        return trainer.lr_scheduler

    trainer.create_scheduler = create_scheduler


def _settings(planned: Any) -> dict[str, Any]:
    """What the sweep shares with the run it is for (the rate it finds holds for these)."""
    names = ("model_name_or_path", "max_seq_length", "per_device_train_batch_size", "gradient_accumulation_steps",
             "lora_r", "lora_alpha", "lora_dropout", "optim", "load_in_4bit", "bf16", "fp16",
             "gradient_checkpointing", "packing", "weight_decay", "max_grad_norm")
    return {name: planned.value(name) for name in names}


def check_outputs(plot: Path | None, write: Path | None) -> None:
    """Before the sweep, not after it: the plot's path is one lr-find may write, and a config to --write exists
    readable or not at all (its folder there)."""
    if plot is not None:
        if plot.is_dir():
            raise LorawizError(f"--plot {plot} is a folder.", hint="Pass a file name, e.g. --plot lr_find.png.")
        if plot.exists() and not written_by_lr_find(plot):
            raise LorawizError(f"--plot {plot} exists and lr-find did not write it; it was left as it is.",
                               hint="Pass another name with --plot, or --no-plot.")
    if write is not None:
        if write.exists():
            from lorawiz.config.files import read_config_file

            found = read_config_file(write)
            if found.problems:
                raise LorawizError(f"--write {write}: {found.problems[0].where}: {found.problems[0].message}",
                                   hint="Fix the file first, or write to a new one with --write OTHER.yaml.")
        elif not write.parent.is_dir():
            raise LorawizError(f"--write {write}: the folder {write.parent} does not exist.",
                               hint="Create it first, or pass a path in an existing folder.")


def save_plot(path: Path, result: LrFindResult) -> None:
    """The curve as a PNG at `path`, atomically; a file there is replaced only when lr-find wrote it."""
    from lorawiz.data.writers import atomic_output
    from lorawiz.views.lr_figure import lr_figure, png_bytes

    check_outputs(path, None)
    data = png_bytes(lr_figure(result))
    with atomic_output(path, overwrite=True, binary=True) as handle:
        handle.write(data)


def written_by_lr_find(path: Path) -> bool:
    """Whether the PNG at `path` is one lr-find wrote (its Software text), so that replacing it loses nothing."""
    from PIL import Image, UnidentifiedImageError

    from lorawiz.views.lr_figure import SOFTWARE

    try:
        with Image.open(path) as image:
            return image.format == "PNG" and image.text.get("Software") == SOFTWARE
    except (OSError, UnidentifiedImageError, ValueError):
        return False


def write_rate(path: Path, result: LrFindResult, asked: Any) -> str:
    """Put the suggested rate into the config at `path`: the one line edited in a file that exists (lorawiz.config
    .edit), else a new config of what the user set (`asked`, a ResolvedConfig) with the rate. Returns what it did."""
    from datetime import date

    rate = result.suggested_rate
    if rate is None:
        raise LorawizError("the sweep found no learning rate to write; nothing was written.",
                           hint="Try a lower --end-lr or more --steps.")
    comment = f"lorawiz lr-find {date.today().isoformat()}: valley rule"
    if path.exists():
        from lorawiz.config.edit import set_in_config_file

        return f"{path}: learning_rate {rate:.1e}, {set_in_config_file(path, 'learning_rate', rate, comment)}"
    from lorawiz.config.files import write_config_file

    values = asked.flat()
    values["learning_rate"] = rate
    keep = {name for name in values if asked.source(name).kind in ("preset", "file", "set", "flag")}
    comments = {name: asked.source(name).explained for name in keep}
    comments["learning_rate"] = comment
    header = f"# written by lorawiz lr-find: the settings given to it, with the rate it found. Train with: " \
             f"lorawiz train {path}"
    write_config_file(path, values, header, comments, {name: name not in keep | {"learning_rate"}
                                                       for name in values})
    return f"{path}: a new config with learning_rate {rate:.1e}"
