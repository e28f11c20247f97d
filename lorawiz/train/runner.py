"""`lorawiz train` as a library call: plan, prepare data, train with a backend, and never lose work.

The flow: check the output folder -> plan (hardware, model, data) and fill every value nobody set from it -> adapt
what this machine cannot execute (announced) -> tokenise with the loss on assistant turns -> train, with
checkpoints marked complete, Ctrl-C/SIGTERM saving a checkpoint, a NaN guard, and one automatic restart after an
out-of-memory error with the next fallback -> write the adapter, tokenizer, config and results.
The typed configuration (a ResolvedConfig) is what travels; train/args.py turns it into the library objects.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lorawiz import __version__
from lorawiz.errors import LorawizError
from lorawiz.publish.push import check_token, push_run
from lorawiz.train.checkpoints import check_output_dir, check_resume_flags
from lorawiz.train.interrupt import StopRequest


@dataclass
class Reporter:
    """How the run speaks: `say` a line, `show` a Rich renderable (the CLI passes the console's)."""

    say: Callable[[str], None] = lambda text: None
    show: Callable[[Any], None] = lambda renderable: None


@dataclass
class TrainRequest:
    config: Any  # ResolvedConfig
    backend: str = "auto"
    resume: str | None = None
    dry_run: bool = False
    overwrite: bool = False
    plain: bool = False
    hardware_spec: str | None = None
    argv: list[str] = field(default_factory=list)  # the command line, for the resume hint
    extra_args: dict[str, Any] = field(default_factory=dict)  # more SFTConfig settings (the demo's eval_on_start)
    reporter: Reporter = field(default_factory=Reporter)


@dataclass
class TrainResult:
    output_dir: Path
    status: str  # done, finished (--resume auto found nothing left to train), dry-run
    metrics: dict[str, Any] = field(default_factory=dict)
    best_checkpoint: str | None = None
    seconds: float = 0.0


@dataclass
class RunContext:
    """What one run knows after planning: the configuration it runs (changed only through `update`)."""

    request: TrainRequest
    resolved: Any
    inputs: Any  # PlanInputs
    backend: Any
    backend_name: str
    output_dir: Path
    is_main: bool
    world_size: int
    on_gpu: bool
    started: float
    run_data: Any = None  # lorawiz.train.data.RunData: the tokenised files, views made again after a change
    fault: Any = None  # the one FaultInjection of this process: it fires once, not again after a restart

    @property
    def cfg(self) -> Any:
        return self.resolved.config

    def say(self, text: str) -> None:
        if self.is_main:
            self.request.reporter.say(text)


def _is_main() -> bool:
    """The process that checks and writes the output folder: the only one, or rank 0 of a distributed launch."""
    return int(os.environ.get("RANK", "0")) == 0


def run_training(request: TrainRequest) -> TrainResult:
    """Plan and train as the module docstring says. The main process holds the output folder's lock throughout (a
    second run there is refused with this one's pid); Ctrl-C or SIGTERM before training unwinds, releases it and
    says what to do next, with the shell's exit code (130, 143)."""
    from lorawiz.ownership import hold_output_dir
    from lorawiz.train.interrupt import exit_code_of, sigterm_unwinds

    check_resume_flags(request.resume, request.overwrite)
    from lorawiz.train.sources import with_sources

    request = replace(request, config=with_sources(request.config))  # datasets mixed, from_adapter's settings
    if request.dry_run or not _is_main():
        return _plan_and_train(request)
    output_dir = Path(request.config.config.logging.output_dir).expanduser()
    with hold_output_dir(output_dir, request.reporter.say), sigterm_unwinds():
        try:
            return _plan_and_train(request)
        except KeyboardInterrupt as exc:
            request.reporter.say(_interrupted_note(output_dir, request))
            raise SystemExit(exit_code_of(exc)) from None


def _interrupted_note(output_dir: Path, request: TrainRequest) -> str:
    from lorawiz.train.checkpoints import complete_checkpoints

    done = complete_checkpoints(output_dir)
    if done:
        return f"interrupted; the last complete checkpoint is {done[-1]}. Resume with: {_resume_command(request)}"
    return "interrupted before the first checkpoint: nothing to resume; run the same command again to start over."


def _plan_and_train(request: TrainRequest) -> TrainResult:
    from lorawiz.libraries import hide_optional_kernel_warning, quiet_libraries
    from lorawiz.planning import adapt_to_machine, fill_from_plan, gather, make_plan
    from lorawiz.train.distributed import launched_layout, launched_sharded
    from lorawiz.views.plan import render_plan

    started = time.monotonic()
    hide_optional_kernel_warning()
    from lorawiz.train.fallback import with_relaunch_fallback

    # FSDP or ZeRO-3, as accelerate launched it; after an out-of-memory restart by the launcher, its fallback
    request = replace(request, config=with_relaunch_fallback(launched_layout(request.config)))
    cfg = request.config.config
    if not cfg.model.model_name_or_path:
        raise LorawizError("no model to train.", hint="Pass --model (a hub id, a local folder, or builtin:tiny).")
    if not cfg.data.train_file:
        raise LorawizError("no training data.", hint="Pass --data FILE (any shape lorawiz format reads), or "
                                                     "builtin:triage.")
    from lorawiz.hardware import machines_of, parse_hardware_spec, probe

    machine = machines_of(probe(cfg.logging.output_dir or "."))  # --num-machines: this machine, N times
    planned_for = request.hardware_spec
    hardware = parse_hardware_spec(planned_for) if planned_for else machine
    from lorawiz.train.backends import pick_backend

    backend_name, why, backend = pick_backend(request.backend, cfg, machine)  # before transformers (unsloth)
    quiet_libraries(request.plain)
    output_dir = Path(cfg.logging.output_dir).expanduser()
    is_main = _is_main()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    asked = request.resume
    if not request.dry_run:
        request = replace(request, resume=_resume_here(output_dir, request, is_main))

    if cfg.logging.push_to_hub and is_main and not request.dry_run:  # a token, before any data or model loads
        check_token(cfg.logging.hub_model_id, "hub_model_id")
    from lorawiz.train.data import load_run_data, prepare_data

    run_data = load_run_data(request.config.config, world, say=request.reporter.say if is_main else None,
                             progress=is_main and not request.plain and sys.stderr.isatty())
    inputs = gather(request.config, hardware=hardware, tokenised=run_data.train, data_note=run_data.cache_note())
    plan = make_plan(inputs)
    resolved = fill_from_plan(request.config, plan)
    from lorawiz.train.head import fill_labels

    resolved = fill_labels(resolved, run_data.train, run_data.tokenizer)  # a sequence head's classes, from the data
    resolved, changes = adapt_to_machine(resolved, machine, planned_for,
                                         sharded_launch=request.dry_run or launched_sharded())
    if asked == "auto" and not request.dry_run:
        finished = _finished(output_dir, resolved, request, is_main, started)
        if finished is not None:
            return finished
    ctx = RunContext(request, resolved, inputs, backend, backend_name, output_dir, is_main, world,
                     on_gpu=not machine.is_cpu_only, started=started, run_data=run_data)
    if is_main:
        request.reporter.show(render_plan(inputs, plan, resolved, request.plain, changes))
    if is_main and not request.dry_run:
        from lorawiz.train.diskspace import check_disk_space

        check_disk_space(output_dir, ctx.cfg, inputs.model, plan.steps)
    ctx.say(f"backend: {backend_name} ({why})")
    if not request.dry_run and is_main:
        output_dir.mkdir(parents=True, exist_ok=True)

    data = prepare_data(ctx.cfg, run_data)
    if request.dry_run:
        _show_dry_run(ctx, data)
        return TrainResult(output_dir, "dry-run", seconds=time.monotonic() - started)
    from lorawiz.train.checkpoints import FullDiskStops

    with FullDiskStops(output_dir, _resume_command(request)):  # names the last complete checkpoint
        return _start(ctx, data)


def _resume_here(output_dir: Path, request: TrainRequest, is_main: bool) -> str | None:
    """The main process checks the folder (and clears a run stopped before its first checkpoint); the others follow
    it: where no checkpoint is complete, `--resume auto` starts from the beginning there too."""
    if is_main:
        return check_output_dir(output_dir, request.resume, request.overwrite, request.reporter.say)
    from lorawiz.train.checkpoints import complete_checkpoints

    return None if request.resume == "auto" and not complete_checkpoints(output_dir) else request.resume


def _finished(output_dir: Path, resolved: Any, request: TrainRequest, is_main: bool, started: float
              ) -> TrainResult | None:
    """`--resume auto` on a run that ended normally and has nothing left to train: say so and train nothing."""
    from lorawiz.train.checkpoints import finished_run

    done = finished_run(output_dir, resolved.config)
    if done is None:
        return None
    if is_main:
        request.reporter.say(f"{output_dir} holds a finished run (step {done['global_step']}, adapter and "
                             "all_results.json written): nothing to train.")
        request.reporter.say("To train longer, raise --max-steps or --num-train-epochs with --resume auto; to start "
                             "over, use --overwrite (without --resume) or another --output-dir.")
    return TrainResult(output_dir, "finished", dict(done), seconds=time.monotonic() - started)


def _show_dry_run(ctx: RunContext, data: Any) -> None:
    from lorawiz.data.masking import show_example
    from lorawiz.views.dataset import render_example

    s, cfg = data.stats, ctx.cfg
    ctx.say(f"data: {s['train_rows']:,} training and {s['val_rows']:,} validation examples; {s['truncated']:,} "
            f"truncated at {cfg.data.max_seq_length}, {s['dropped']:,} dropped (no answer left)")
    pieces = show_example(data.tokenizer, data.first)
    for renderable in render_example(pieces, ctx.request.plain, cfg.data.assistant_only_loss):
        ctx.request.reporter.show(renderable)
    ctx.say("dry run: nothing trained")


def _start(ctx: RunContext, data: Any) -> TrainResult:
    from lorawiz.builtin import local_path
    from lorawiz.train.callbacks import FaultInjection
    from lorawiz.train.checkpoints import (
        DataFingerprint,
        check_fingerprints,
        find_resume_checkpoint,
        fingerprint_config,
        write_run_info,
    )
    from lorawiz.train.outputs import write_run_config

    cfg = ctx.cfg
    config_fp = fingerprint_config(ctx.resolved.flat())
    run = ctx.run_data
    data_fp = DataFingerprint([local_path(cfg.data.train_file), local_path(cfg.data.validation_file)],
                              [run.train.content, run.validation.content if run.validation else None],
                              background=ctx.is_main)
    checkpoint = None
    if ctx.request.resume:
        checkpoint = find_resume_checkpoint(ctx.output_dir, ctx.request.resume)
        check_fingerprints(ctx.output_dir, config_fp, data_fp, checkpoint)
        ctx.say(f"resuming from {checkpoint}")
    if ctx.is_main:
        from lorawiz.train.distributed import record_launch_config

        record_launch_config(ctx.output_dir)  # the accelerate config this run was launched with, beside its outputs
        write_run_config(ctx.output_dir, ctx.resolved)
        write_run_info(ctx.output_dir, {"lorawiz": __version__, "config_fingerprint": config_fp,
                                        "data_key": data_fp.key, "backend": ctx.backend_name,
                                        "command": ctx.request.argv})
    ctx.fault = FaultInjection.from_env()
    return _train_with_fallback(ctx, data, checkpoint, (config_fp, data_fp))


def _train_with_fallback(ctx: RunContext, data: Any, checkpoint: Path | None, fingerprints: tuple) -> TrainResult:
    from lorawiz.train.checkpoints import complete_checkpoints
    from lorawiz.train.data import prepare_data
    from lorawiz.train.fallback import is_out_of_memory, next_fallback, stop_for_relaunch
    from lorawiz.train.outputs import write_run_config

    restarted = False
    while True:
        try:
            return _train_once(ctx, data, checkpoint, fingerprints)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            if ctx.world_size > 1:
                stop_for_relaunch(ctx.cfg, ctx.world_size)  # the launcher restarts every process, or it stops
            fallback = next_fallback(ctx.cfg)
            if restarted:
                raise LorawizError("out of GPU memory again after one automatic restart.",
                                   hint=f"Try: {fallback[1]}" if fallback else "Use a smaller model or a "
                                                                               "bigger GPU.") from exc
            if fallback is None:
                raise LorawizError("out of GPU memory with the leanest settings.",
                                   hint="Use a smaller model, shorter sequences, or a bigger GPU.") from exc
            changes, change = fallback
            ctx.resolved = ctx.resolved.with_values(changes)
            restarted = True
            if ctx.is_main:
                write_run_config(ctx.output_dir, ctx.resolved)  # lorawiz.yaml re-runs what actually ran
            _free_memory()
            done = complete_checkpoints(ctx.output_dir)
            checkpoint = done[-1] if done else checkpoint
            ctx.say(f"out of memory: restarting once with {change}" + (f", from {checkpoint.name}" if checkpoint
                                                                        else ""))
            if "max_seq_length" in changes or "load_in_4bit" in changes:
                data = prepare_data(ctx.cfg, ctx.run_data)


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _train_once(ctx: RunContext, data: Any, checkpoint: Path | None, fingerprints: tuple) -> TrainResult:
    from lorawiz.train import args as make
    from lorawiz.train.backends.hf import flash_attention, liger_available
    from lorawiz.train.callbacks import NonFiniteLossGuard
    from lorawiz.train.checkpoints import make_marker_callback
    from lorawiz.train.monitor import TrainMonitor
    from lorawiz.train.trackers import tracker_errors

    cfg = ctx.cfg
    args = make.trainer_config(cfg, output_dir=str(ctx.output_dir), on_gpu=ctx.on_gpu, train_rows=len(data.train),
                           world_size=ctx.world_size, flash_attention=flash_attention(cfg),
                           liger=liger_available(), extra=ctx.request.extra_args)
    make.set_seed(cfg)  # LoRA's initial weights too: same seed, same run
    loaded = ctx.backend.load(cfg)
    for note in loaded.notes:
        ctx.say(f"note: {note}")
    monitor = TrainMonitor(ctx.output_dir, plain=ctx.request.plain, model_name=ctx.inputs.model.name,
                           backend=ctx.backend_name, is_main=ctx.is_main)
    guard = NonFiniteLossGuard(monitor=monitor)
    stop = StopRequest()
    callbacks = [monitor, guard, make_marker_callback(*fingerprints), stop.callback()]
    stopper = make.early_stopping(cfg, monitor)
    if stopper is not None:
        callbacks.append(stopper)
    if ctx.fault is not None:
        callbacks.append(ctx.fault)
    # transformers 5 takes the TensorBoard folder from the environment only (TrainingArguments lost logging_dir)
    os.environ["TENSORBOARD_LOGGING_DIR"] = make.tensorboard_dir(cfg)
    trainer = ctx.backend.trainer(loaded, data.train, data.eval, args, callbacks, lengths=data.train_lengths)
    monitor.attach(trainer)  # drops the Trainer's own printer/progress callbacks
    stop.install()
    with tracker_errors():  # said as the tracker's failure, after the monitor wrote what happened
        try:
            result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        except BaseException as exc:
            monitor.close(exc)
            raise
        finally:
            stop.restore()
            monitor.close()
    _raise_if_diverged(ctx, guard)
    if stop.signal_name is not None:
        ctx.say(f"stopped by {stop.signal_name} at step {trainer.state.global_step}; a checkpoint was saved in "
                f"{ctx.output_dir}.")
        ctx.say(f"resume with: {_resume_command(ctx.request)}")
        from lorawiz.train.launcher import stopped_exit

        raise SystemExit(stopped_exit(stop.exit_code))  # 130 for Ctrl-C, 143 for SIGTERM
    from lorawiz.train.distributed import gathered_adapter

    adapter = gathered_adapter(trainer)  # every process takes part in gathering a sharded adapter
    if ctx.is_main:
        from lorawiz.train.outputs import save_outputs

        save_outputs(trainer, loaded.tokenizer, ctx.resolved, result, ctx.output_dir, ctx.inputs.model.name,
                     ctx.backend_name, data.stats, adapter)
        from lorawiz.train.checkpoints import mark_finished

        mark_finished(ctx.output_dir, trainer.state.global_step, ctx.cfg)  # `--resume auto` then trains nothing
        ctx.say(f"saved the adapter, tokenizer and results in {ctx.output_dir}")
        if cfg.logging.push_to_hub:
            push_run(ctx.output_dir, cfg.logging, ctx.backend_name, ctx.say)
    return TrainResult(ctx.output_dir, "done", dict(result.metrics), trainer.state.best_model_checkpoint,
                       time.monotonic() - ctx.started)


def _raise_if_diverged(ctx: RunContext, guard: Any) -> None:
    if getattr(guard, "tripped_at_step", None) is None:
        return
    from lorawiz.train.checkpoints import complete_checkpoints

    done = complete_checkpoints(ctx.output_dir)
    raise LorawizError(
        f"the loss became {getattr(guard, 'value', 'NaN')} at step {guard.tripped_at_step}; training stopped.",
        hint="Likely causes: a learning rate too high (try half), fp16 overflow (use bf16 or fp32), or bad rows "
             "(check with lorawiz inspect). " + (f"The last good checkpoint is {done[-1]}." if done else
                                                 "No checkpoint was saved before it."))


def _resume_command(request: TrainRequest) -> str:
    argv = [a for a in request.argv if a not in ("--overwrite",)]
    if "--resume" not in argv:
        argv += ["--resume", "auto"]
    return "lorawiz " + " ".join(shlex.quote(a) for a in argv)
