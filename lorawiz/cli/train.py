"""`lorawiz train`: plan, then train a LoRA/QLoRA adapter with a live dashboard, safe checkpoints and resume."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer

from lorawiz.cli import _options as opt
from lorawiz.cli._funnel import funnel


@opt.every_knob_as_flag
@funnel
def train_command(
    config: opt.ConfigArg = None,
    preset: opt.PresetOpt = None,
    set_: opt.SetOpt = None,
    backend: Annotated[str, typer.Option("--backend", metavar="auto|hf|unsloth", help="Training backend; auto "
                                         "takes unsloth when it is installed and supports the GPU and model.")
                       ] = "auto",
    resume: Annotated[str | None, typer.Option(
        "--resume", metavar="[auto|PATH]",
        help="Continue from the newest complete checkpoint in the output folder (auto), or from PATH.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan and show the first tokenised example with its "
                                          "loss mask; train nothing.")] = False,
    hardware: Annotated[str | None, typer.Option("--hardware", metavar="SPEC", help="Plan as if on this hardware "
                                                 "(see lorawiz plan --help); training still runs here, with the "
                                                 "settings this machine cannot execute changed (and shown).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the lorawiz run already in the output "
                                            "folder (never a folder holding other files or runs).")] = False,
    num_processes: Annotated[int | None, typer.Option("--num-processes", metavar="N", help="Data-parallel processes "
                                                      "[default: ACCELERATE_NUM_PROCESSES, else one per visible "
                                                      "GPU].")] = None,
    accelerate_config: Annotated[str | None, typer.Option("--accelerate-config", metavar="FILE", help="Your own "
                                                          "accelerate config (FSDP, DeepSpeed, several machines), "
                                                          "passed to accelerate launch; it wins over the one lorawiz "
                                                          "writes for the plan.")] = None,
    num_machines: Annotated[int, typer.Option("--num-machines", metavar="M", help="Machines the run spans; start "
                                              "the same command on each, with its own --machine-rank.")] = 1,
    machine_rank: Annotated[int, typer.Option("--machine-rank", metavar="K", help="This machine's number, 0 to "
                                              "M-1 (0 is the main one: it writes the run folder).")] = 0,
    main_process_ip: Annotated[str | None, typer.Option("--main-process-ip", metavar="ADDR", help="Address of "
                                                        "machine 0, which the others connect to.")] = None,
    main_process_port: Annotated[int | None, typer.Option("--main-process-port", metavar="PORT", help="Port on "
                                                          "machine 0 [default: 29500].")] = None,
    plain: Annotated[bool, typer.Option("--plain", help="One plain line per logging step instead of the "
                                        "dashboard.")] = False,
    model_name_or_path: opt.ModelOpt = None,
    train_file: opt.TrainFileOpt = None,
    validation_file: opt.ValidationFileOpt = None,
    task: opt.TaskOpt = None,
    output_dir: opt.OutputDirOpt = None,
    max_seq_length: opt.MaxSeqLengthOpt = None,
    lora_r: opt.LoraROpt = None,
    lora_alpha: opt.LoraAlphaOpt = None,
    lora_dropout: opt.LoraDropoutOpt = None,
    learning_rate: opt.LearningRateOpt = None,
    num_train_epochs: opt.EpochsOpt = None,
    max_steps: opt.MaxStepsOpt = None,
    per_device_train_batch_size: opt.BatchSizeOpt = None,
    gradient_accumulation_steps: opt.GradAccumOpt = None,
    warmup_ratio: opt.WarmupRatioOpt = None,
    warmup_steps: opt.WarmupStepsOpt = None,
    seed: opt.SeedOpt = None,
    early_stopping_patience: opt.PatienceOpt = None,
    load_in_4bit: opt.LoadIn4bitOpt = None,
    bf16: opt.Bf16Opt = None,
    fp16: opt.Fp16Opt = None,
    gradient_checkpointing: opt.GradCkptOpt = None,
    packing: opt.PackingOpt = None,
    cache_dir: opt.CacheDirOpt = None,
    config_file: opt.ConfigFileOpt = None,
    **knobs: Any,
) -> None:
    """Train a LoRA or QLoRA adapter: plan for this machine, then train, evaluate and save.

    Values come from built-in defaults < the recommender < --preset < CONFIG < --set < flags; the plan
    printed first shows every value the run uses and where it came from. With --hardware, values this
    machine cannot execute (bf16 on a CPU, 8-bit optimizers without CUDA) are changed, and the plan
    says so. Ctrl-C (exit 130) or SIGTERM (exit 143) saves a checkpoint and prints the command that
    resumes; --resume continues from the newest complete one, and says so when the run is finished.
    One run at a time writes an output folder. Outputs: the adapter (PEFT format),
    tokenizer, lorawiz.yaml (re-runnable), metrics.jsonl, training.log, TensorBoard events,
    all_results.json and a model card.

    \b
    Examples:
      lorawiz train --model meta-llama/Llama-3.1-8B-Instruct --data train.jsonl --preset standard
      lorawiz train configs/default.json --learning_rate 3e-4 --num_train_epochs 5 --lora_r 64
      lorawiz train --model builtin:tiny --data builtin:triage --output-dir runs/demo --resume
      lorawiz train --data pairs.jsonl --method dpo --from-adapter runs/my-sft --output-dir runs/my-dpo
    """
    from lorawiz.cli._report import reporter
    from lorawiz.config.resolve import resolve_config
    from lorawiz.console import is_plain, set_plain
    from lorawiz.train import launcher
    from lorawiz.train.runner import TrainRequest, run_training

    if plain:
        set_plain(True)
    resolved = resolve_config(opt.config_path(config, config_file), preset=preset, set_items=set_ or (),
                              flags=opt.typed_flags(locals()),
                              flag_names=opt.flag_spellings())
    if not launcher.launched() and not dry_run:
        processes, cpu = _processes(num_processes)
        launch = launcher.Launch(processes, num_machines, machine_rank, main_process_ip, main_process_port)
        launch.check()
        if accelerate_config:
            raise typer.Exit(launcher.relaunch(sys.argv[1:], processes, accelerate_config, cpu, say=typer.echo))
        from lorawiz.train.args import sharded

        if processes > 1 or num_machines > 1 or sharded(resolved.config):
            from lorawiz.train.distributed import launch_planned

            raise typer.Exit(launch_planned(sys.argv[1:], resolved, launch, cpu, hardware, say=typer.echo))
    request = TrainRequest(resolved, backend=backend, resume=resume, dry_run=dry_run, overwrite=overwrite,
                           plain=is_plain(), hardware_spec=hardware, argv=launcher.user_argv(sys.argv[1:]),
                           reporter=reporter())
    from lorawiz.train.process_group import leaving_the_process_group

    with leaving_the_process_group():  # one of several processes: its gloo or NCCL group, cleanly
        result = run_training(request)
    if result.status == "done" and os.environ.get("RANK", "0") == "0":
        from lorawiz.console import say
        from lorawiz.serving import describe, vllm_hint

        for line in describe(vllm_hint(result.output_dir)):
            say(line)


def _processes(requested: int | None) -> tuple[int, bool]:
    """How many processes to launch, and whether they run on the CPU."""
    from lorawiz.errors import LorawizError
    from lorawiz.hardware import probe
    from lorawiz.train import launcher

    if requested is not None and requested < 1:
        raise LorawizError(f"--num-processes {requested}: must be at least 1.", hint="For example --num-processes 2.")
    hardware = probe()
    if requested is None:
        requested = launcher.requested_processes()
    return (requested if requested is not None else max(1, hardware.gpu_count)), hardware.is_cpu_only
