"""The accelerate config a sharded or multi-machine run launches with, and what such a run does differently
inside (FSDP on CPU processes for the tests, the adapter gathered from its shards).

FSDP is FSDP2 (torch fully_shard) with the model's decoder layer as the unit of sharding, activation checkpointing
done by FSDP when the plan checkpoints, CPU-RAM-efficient loading and sharded checkpoints; DeepSpeed is ZeRO-3 with
a JSON of its own. Both are written as accelerate reads them (`accelerate launch --config_file`), so a user who
wants to change something edits the file and passes it back with `--accelerate-config`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lorawiz.errors import LorawizError

CONFIG_NAME = "accelerate_config.yaml"
DEEPSPEED_NAME = "deepspeed_zero3.json"
CONFIG_ENV = "LORAWIZ_ACCELERATE_CONFIG"  # the file the children were launched with, copied into the run folder


def launched_sharded() -> bool:
    """Whether accelerate launched this process for FSDP or DeepSpeed."""
    return any(os.environ.get(name, "").lower() == "true"
               for name in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"))


def launched_layout(resolved: Any) -> Any:
    """The parallelism this process was launched with, read from what accelerate launch sets (ACCELERATE_USE_FSDP,
    FSDP_OFFLOAD_PARAMS, ACCELERATE_USE_DEEPSPEED, its offload devices), put into the configuration so that the plan
    shows what runs. A value the user set that the launch contradicts is refused."""
    from lorawiz.config.layers import adjusted

    env = os.environ
    if env.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        parallelism, offload = "fsdp", env.get("FSDP_OFFLOAD_PARAMS", "false").lower() == "true"
    elif env.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        parallelism = "deepspeed"
        offload = "cpu" in (env.get("ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE", ""),
                            env.get("ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE", ""))
        if env.get("ACCELERATE_DEEPSPEED_CONFIG_FILE"):
            offload = _deepspeed_file_offloads(env["ACCELERATE_DEEPSPEED_CONFIG_FILE"])
    else:
        return resolved
    changes = {}
    for name, value in (("parallelism", parallelism), ("cpu_offload", offload)):
        source = resolved.source(name)
        if resolved.value(name) == value and (source.is_user or source.kind == "preset"):
            continue  # as the user set it
        if (source.is_user or source.kind == "preset") and resolved.value(name) is not None:
            raise LorawizError(f"{name} = {resolved.value(name)} ({source.where or source.label}), but this process "
                               f"was launched with {name} {value} (the accelerate config).",
                               hint="Make them agree: change the accelerate config, or remove the setting.")
        changes[name] = (value, adjusted("as launched (the accelerate config)"))
    return resolved.with_values(changes)


def _deepspeed_file_offloads(path: str) -> bool:
    try:
        zero = json.loads(Path(path).read_text(encoding="utf-8")).get("zero_optimization", {})
    except (OSError, ValueError):
        return False
    return any(str((zero.get(key) or {}).get("device", "none")) == "cpu" for key in ("offload_param",
                                                                                      "offload_optimizer"))


def decoder_layer_class(model_path: str, trust_remote_code: bool = False, cache_dir: str | None = None) -> str:
    """The class name of the model's decoder layer (what FSDP wraps one by one): the first of the model class's
    `_no_split_modules`, which transformers keeps for exactly this (device maps never split such a module)."""
    import transformers
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    from lorawiz.hub import cache_only_unless_local

    with cache_only_unless_local(model_path):
        config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code, cache_dir=cache_dir)
    name = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(getattr(config, "model_type", ""))
    model_class = getattr(transformers, name, None) if name else None
    layers = list(getattr(model_class, "_no_split_modules", None) or [])
    if not layers:
        raise LorawizError(f"{model_path}: lorawiz cannot tell which class is its decoder layer (model type "
                           f"{getattr(config, 'model_type', '?')}), which FSDP needs to shard it layer by layer.",
                           hint="Write an accelerate config with fsdp_transformer_layer_cls_to_wrap and pass it with "
                                "--accelerate-config, or use parallelism: deepspeed.")
    return next((layer for layer in layers if layer.endswith("DecoderLayer")), layers[0])


def accelerate_config(cfg: Any, *, processes: int, machines: int = 1, machine_rank: int = 0,
                      main_process_ip: str | None = None, main_process_port: int | None = None,
                      layer_class: str | None = None, deepspeed_file: str | None = None) -> dict[str, Any]:
    """The accelerate config for this run (the keys `accelerate config` writes). `processes` counts all machines'."""
    from lorawiz.train.args import planned

    opt = cfg.optimization
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        # The Trainer sets mixed precision from bf16/fp16 (lorawiz.yaml); "no" leaves it to them, and a user's
        # ACCELERATE_MIXED_PRECISION passes on, as in every lorawiz launch
        "mixed_precision": os.environ.get("ACCELERATE_MIXED_PRECISION", "no"),
        "num_machines": machines,
        "num_processes": processes,
        "machine_rank": machine_rank,
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
        "dynamo_config": {"dynamo_backend": "NO"},
    }
    if machines > 1:
        config["main_process_ip"] = main_process_ip
        config["main_process_port"] = main_process_port or 29500
    if opt.parallelism == "fsdp":
        config["distributed_type"] = "FSDP"
        config["fsdp_config"] = {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_transformer_layer_cls_to_wrap": layer_class,
            "fsdp_reshard_after_forward": True,
            "fsdp_activation_checkpointing": bool(planned(cfg, "gradient_checkpointing")),
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_offload_params": bool(opt.cpu_offload),
            "fsdp_state_dict_type": "SHARDED_STATE_DICT",
        }
    elif opt.parallelism == "deepspeed":
        config["distributed_type"] = "DEEPSPEED"
        config["deepspeed_config"] = {"deepspeed_config_file": deepspeed_file, "zero3_init_flag": True,
                                      "deepspeed_multinode_launcher": "standard"}
        # accelerate refuses a mixed_precision beside a DeepSpeed JSON (DeepSpeedPlugin._deepspeed_config_checks):
        # the JSON's bf16/fp16 "auto" takes the Trainer's precision instead
        del config["mixed_precision"]
    else:
        config["distributed_type"] = "MULTI_GPU" if processes > 1 else "NO"
    return config


def deepspeed_config(cfg: Any, live_parameters: int) -> dict[str, Any]:
    """ZeRO-3 for LoRA: parameters, gradients and optimizer states partitioned (offloaded to CPU RAM when planned),
    at most `live_parameters` gathered at once (the plan counts two decoder layers), and the 16-bit adapter gathered
    on save. "auto" values are filled by transformers from the TrainingArguments, so they always agree."""
    offload = {"device": "cpu", "pin_memory": True} if cfg.optimization.cpu_offload else {"device": "none"}
    return {
        "zero_optimization": {
            "stage": 3,
            "offload_param": offload,
            "offload_optimizer": offload,
            "overlap_comm": True,
            "contiguous_gradients": True,
            "stage3_max_live_parameters": int(live_parameters),
            "stage3_prefetch_bucket_size": "auto",
            "stage3_param_persistence_threshold": "auto",
            "stage3_gather_16bit_weights_on_model_save": True,
        },
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
    }


def write_launch_files(folder: Path, cfg: Any, model: Any, *, processes: int, machines: int = 1,
                       machine_rank: int = 0, main_process_ip: str | None = None,
                       main_process_port: int | None = None) -> Path:
    """Write the accelerate config (and ZeRO-3's JSON) into `folder`, atomically; return the config's path."""
    import yaml

    from lorawiz.builtin import local_path
    from lorawiz.train.args import planned

    folder.mkdir(parents=True, exist_ok=True)
    deepspeed_file = None
    layer_class = None
    parallelism = cfg.optimization.parallelism
    if parallelism == "deepspeed":
        layer = (model.parameters()["layers"]) // max(1, model.layers)
        deepspeed_file = str(folder / DEEPSPEED_NAME)
        _write(Path(deepspeed_file), json.dumps(deepspeed_config(cfg, 2 * layer), indent=2) + "\n")
    elif parallelism == "fsdp":
        layer_class = decoder_layer_class(local_path(planned(cfg, "model_name_or_path")),
                                          cfg.model.trust_remote_code, cfg.model.cache_dir)
    config = accelerate_config(cfg, processes=processes, machines=machines, machine_rank=machine_rank,
                               main_process_ip=main_process_ip, main_process_port=main_process_port,
                               layer_class=layer_class, deepspeed_file=deepspeed_file)
    path = folder / CONFIG_NAME
    _write(path, "# written by lorawiz train: the accelerate config this run was launched with\n"
                 + yaml.safe_dump(config, sort_keys=False))
    return path


def planned_run(resolved: Any, machines: int = 1, hardware_spec: str | None = None, processes: int = 1,
                say: Any = None) -> tuple[Any, Any]:
    """What the launching process needs to know before the processes start: the plan's configuration (as the
    processes will make it, for this machine times `machines`, or for --hardware) and the model's facts.
    `processes`: a machine's, which without a GPU share its RAM and the batch. The data is tokenised here, into
    the cache the processes then read, so a large dataset is read once, not once here and again in them."""
    from dataclasses import replace

    from lorawiz.hardware import parse_hardware_spec, probe
    from lorawiz.planning import fill_from_plan, gather, make_plan
    from lorawiz.train.data import load_run_data
    from lorawiz.train.sources import with_sources

    resolved = with_sources(resolved)
    output_dir = resolved.config.logging.output_dir or "."
    if hardware_spec:
        hardware = parse_hardware_spec(hardware_spec)
    else:
        machine = probe(output_dir)
        hardware = replace(machine, machines=machines, cpu_processes=1 if machine.gpus else processes)
    run_data = load_run_data(resolved.config, say=say)
    inputs = gather(resolved, hardware=hardware, tokenised=run_data.train, data_note=run_data.cache_note())
    return fill_from_plan(resolved, make_plan(inputs)), inputs.model


def launch_planned(argv: list[str], resolved: Any, launch: Any, cpu: bool, hardware_spec: str | None = None,
                   say: Any = None) -> int:
    """Plan, then start the processes the way the plan shares the run: plain data parallel on one machine, else
    with an accelerate config written for it (FSDP2, ZeRO-3, or several machines). Returns their exit code."""
    import tempfile

    from lorawiz.train import launcher
    from lorawiz.train.args import sharded

    if resolved.config.optimization.parallelism == "deepspeed":  # set by the user: refused before tokenising
        require_deepspeed(resolved.source("parallelism").label)
    filled, model = planned_run(resolved, launch.machines, hardware_spec, launch.processes, say=say)
    cfg = filled.config
    if cfg.optimization.parallelism == "deepspeed":
        require_deepspeed(filled.source("parallelism").label)
    if not sharded(cfg) and launch.machines == 1:
        return launcher.relaunch(argv, launch.processes, None, cpu, say=say)
    with tempfile.TemporaryDirectory(prefix="lorawiz-launch-") as folder:
        path = write_launch_files(Path(folder), cfg, model, processes=launch.processes * launch.machines,
                                  machines=launch.machines, machine_rank=launch.machine_rank,
                                  main_process_ip=launch.main_process_ip, main_process_port=launch.main_process_port)
        return launcher.relaunch(argv, launch.processes, str(path), cpu, {CONFIG_ENV: str(path)}, say=say)


def require_deepspeed(source: str) -> None:
    """ZeRO-3 needs the deepspeed package, an optional one: refused before any process starts without it."""
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        raise LorawizError(f"parallelism deepspeed ({source}) needs the deepspeed package, which is not installed.",
                           hint='pip install -e ".[deepspeed]", or use --set parallelism=fsdp.')


def record_launch_config(output_dir: Path) -> None:
    """Copy the accelerate config (and ZeRO-3's JSON) lorawiz launched this run with into its output folder."""
    source = os.environ.get(CONFIG_ENV)
    if not source or not Path(source).is_file():
        return
    for name in (CONFIG_NAME, DEEPSPEED_NAME):
        found = Path(source).with_name(name)
        if found.is_file():
            text = found.read_text(encoding="utf-8")
            _write(output_dir / name, text.replace(str(found.parent), str(output_dir)))


def _write(path: Path, text: str) -> None:
    from lorawiz.data.writers import atomic_output

    with atomic_output(path, overwrite=True) as handle:
        handle.write(text)


_INDEXED_CPU = {"registered": False}


def accept_indexed_cpu_locations() -> None:
    """Let torch.load restore onto torch.device("cpu", N): the Trainer of several CPU processes resumes its
    optimizer with map_location=args.device, which is that, and torch's own CPU deserializer takes only "cpu"."""
    if _INDEXED_CPU["registered"]:
        return
    import torch

    torch.serialization.register_package(
        99, lambda obj: None, lambda obj, location: obj if location.startswith("cpu:") else None)
    _INDEXED_CPU["registered"] = True


def fsdp_on_cpu_processes(trainer: Any) -> None:
    """Let FSDP run on CPU processes: accelerate turns FSDP on only for accelerator devices (its state treats
    processes without a GPU as MULTI_CPU and ignores the FSDP plugin), though torch's fully_shard runs on a CPU
    device mesh over gloo. lorawiz's tests use this to train FSDP2 runs on machines without a GPU."""
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true":
        return
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    state = trainer.accelerator.state
    if state.distributed_type != DistributedType.MULTI_CPU:
        return
    state.distributed_type = DistributedType.FSDP
    state.fsdp_plugin = FullyShardedDataParallelPlugin()
    trainer.is_fsdp_enabled = True


def point_to_best_after_sharded_save(trainer: Any) -> None:
    """transformers looks for the best checkpoint's folder before an FSDP sharded save has written it (its model
    goes in with the optimizer, after the look: Trainer._save_checkpoint), so best_model_checkpoint lags one save
    behind and the best model loaded at the end could be an older, already deleted, checkpoint. Point it at the
    best step's folder once that exists, on every process, and in the checkpoint's trainer_state.json."""
    import os.path

    state = trainer.state
    if not getattr(trainer, "is_fsdp_enabled", False) or not state.best_global_step:
        return
    folder = os.path.join(trainer.args.output_dir, f"checkpoint-{state.best_global_step}")
    if os.path.isdir(folder) and state.best_model_checkpoint != folder:
        state.best_model_checkpoint = folder
        saved = os.path.join(trainer.args.output_dir, f"checkpoint-{state.global_step}", "trainer_state.json")
        if trainer.args.should_save and os.path.isfile(saved):
            state.save_to_json(saved)


def gathered_adapter(trainer: Any) -> dict[str, Any] | None:
    """Under FSDP or ZeRO-3, the trained adapter's full tensors, gathered from every process's shards (every
    process must call this; the main one gets the tensors on the CPU, the others None). None when the run is not
    sharded. The names are the wrapped model's (peft picks the adapter's keys by its modules' names);
    save_sharded_adapter takes FSDP's checkpoint wrappers out of them."""
    fsdp, zero3 = getattr(trainer, "is_fsdp_enabled", False), getattr(trainer, "is_deepspeed_enabled", False)
    if not (fsdp or zero3):
        return None
    model = trainer.accelerator.unwrap_model(trainer.model)
    # the parameters' own names, which keep the checkpoint wrappers (state_dict() drops them, and then peft's
    # selection by module name finds nothing); the same order on every process: the gathers match. The frozen
    # base is never gathered (a 70B model would not fit one machine's RAM).
    adapter = [(name, tensor) for name, tensor in model.named_parameters()
               if "lora_" in name or "modules_to_save" in name]
    if zero3:
        import deepspeed

        # ZeRO-3 partitions each parameter flat across the processes: gathered whole, all at once (adapters
        # are small), on every process (modifier_rank=None: read only)
        with deepspeed.zero.GatheredParameters([tensor for _, tensor in adapter], modifier_rank=None):
            full = {name: tensor.detach().to("cpu").clone() for name, tensor in adapter}
    else:
        full = {name: (tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor).detach().to("cpu").clone()
                for name, tensor in adapter}
    return full if trainer.accelerator.is_main_process else None


def save_sharded_adapter(model: Any, output_dir: Path, adapter_state: dict[str, Any]) -> None:
    """A gathered adapter saved by peft, as a normal PEFT folder: FSDP's activation checkpointing wraps each
    decoder layer, which puts `_checkpoint_wrapped_module.` into every name below it; peft selects the adapter's
    keys by those wrapped names, so they are taken out of the file it wrote, or PeftModel.from_pretrained on the
    plain model would find none of them."""
    from safetensors.torch import load_file, save
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import _CHECKPOINT_PREFIX

    from lorawiz.data.writers import atomic_output

    model.save_pretrained(str(output_dir), state_dict=adapter_state)
    path = output_dir / "adapter_model.safetensors"
    tensors = load_file(str(path))
    if any(_CHECKPOINT_PREFIX in key for key in tensors):
        plain = {key.replace(_CHECKPOINT_PREFIX, ""): tensor for key, tensor in tensors.items()}
        with atomic_output(path, overwrite=True, binary=True) as handle:  # over the file peft just wrote
            handle.write(save(plain, metadata={"format": "pt"}))
