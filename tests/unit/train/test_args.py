"""Every knob of the schema reaches the trainer (lorawiz/train/args.py and the data preparation) and lorawiz.yaml.

Table-driven: each knob is set to a value other than its default and other than what the recommender would pick
(0, False and empty included), from a config file, from `--set` and, where it has one, from its typed flag. The
training objects are then built exactly as `lorawiz train` builds them (plan -> fill -> args), and the value must
arrive there and be recorded in the run's lorawiz.yaml.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from lorawiz.cli._options import TYPED_FLAGS, flag_spellings
from lorawiz.config.files import read_config_file
from lorawiz.config.layers import defaults_layer
from lorawiz.config.resolve import resolve_config, resolve_layers
from lorawiz.config.schema import KNOBS, SECTION_OF
from lorawiz.hardware import parse_hardware_spec
from lorawiz.planning import fill_from_plan, gather, make_plan
from lorawiz.train import args as make
from lorawiz.train.outputs import write_run_config

ROWS = 40


@dataclass
class Built:
    resolved: Any
    sft: Any
    lora: Any
    quant: Any
    model: dict[str, Any]
    stopper: Any
    plan: Any
    data: Any = None
    yaml: dict[str, Any] = field(default_factory=dict)
    accelerate: dict[str, Any] = field(default_factory=dict)  # the accelerate config a launch would write


@dataclass(frozen=True)
class Case:
    knob: str
    value: Any
    arrived: Any  # Built -> the value as the trainer received it
    expected: Any = "SAME"  # what `arrived` returns, when it differs from `value` (a path resolved, a list mapped)
    companions: dict[str, Any] = field(default_factory=dict)  # other values the case needs to be valid
    needs_data: bool = False  # arrives through data preparation (tokenisation), slower


def _sft(attribute: str):
    return lambda built: getattr(built.sft, attribute)


def _lora(attribute: str):
    return lambda built: getattr(built.lora, attribute)


def _quant(attribute: str):
    return lambda built: getattr(built.quant, attribute)


def _first_decoded(built: Built) -> str:
    return built.data.tokenizer.decode(built.data.first["input_ids"])


CASES = [
    # model
    Case("model_name_or_path", "builtin:tiny", lambda b: b.model["pretrained_model_name_or_path"],
         expected="TINY_PATH"),
    Case("cache_dir", "/tmp/lorawiz-test-cache", lambda b: b.model["cache_dir"]),
    Case("trust_remote_code", True, lambda b: b.model["trust_remote_code"]),
    Case("load_in_4bit", True, _quant("load_in_4bit")),
    Case("load_in_8bit", True, _quant("load_in_8bit"), companions={"load_in_4bit": False}),
    Case("bnb_4bit_quant_type", "fp4", _quant("bnb_4bit_quant_type"), companions={"load_in_4bit": True}),
    Case("bnb_4bit_compute_dtype", "float16", lambda b: str(b.quant.bnb_4bit_compute_dtype),
         expected="torch.float16", companions={"load_in_4bit": True}),
    Case("pad_token", "<|im_end|>", lambda b: _pad_token_set(b.resolved.config.model.pad_token)),
    Case("bnb_4bit_use_double_quant", False, _quant("bnb_4bit_use_double_quant"), companions={"load_in_4bit": True}),
    # data
    # 16 + 40 rows mixed, 6 (10%, rounded up) held out: 50 trained on
    Case("datasets", [{"path": "OTHER_TRAIN"}, {"path": "TRAIN"}], lambda b: b.data.stats["train_rows"],
         expected=50, needs_data=True),
    Case("train_file", "OTHER_TRAIN", lambda b: b.data.stats["train_rows"], expected=12, needs_data=True,
         companions={"val_split": 0.25}),
    Case("validation_file", "VAL_FILE", lambda b: b.data.stats["val_rows"], expected=7, needs_data=True),
    Case("val_split", 0.25, lambda b: b.data.stats["val_rows"], expected=ROWS // 4, needs_data=True),
    Case("max_seq_length", 64, _sft("max_length")),
    Case("packing", True, _sft("packing")),
    Case("group_by_length", False, _sft("train_sampling_strategy"), expected="random"),
    Case("assistant_only_loss", False, lambda b: min(b.data.first["labels"]) >= 0, expected=True, needs_data=True),
    Case("dataset_cache_dir", "CACHE_DIR", lambda b: b.data.cache_entry.parent.parent, expected="CACHE_PATH",
         needs_data=True),
    Case("system_prompt", "You triage incidents.", lambda b: "You triage incidents." in _first_decoded(b),
         expected=True, needs_data=True),
    # the starting adapter's rank and targets are the run's (lorawiz.train.sources)
    Case("from_adapter", "ADAPTER", lambda b: (b.lora.r, b.lora.target_modules), expected=(4, {"q_proj", "v_proj"})),
    Case("task", "classification", lambda b: b.plan.values["lora_r"].value, expected=8),
    Case("head", "sequence", lambda b: (getattr(b.lora.task_type, "value", b.lora.task_type), b.model["num_labels"]),
         expected=("SEQ_CLS", 2), companions={"task": "classification", "labels": ["fire", "medical"]}),
    Case("labels", ["medical", "fire"], lambda b: b.model["id2label"], expected={0: "medical", 1: "fire"},
         companions={"task": "classification", "head": "sequence"}),
    # lora
    Case("lora_r", 4, _lora("r")),
    Case("lora_alpha", 7, _lora("lora_alpha")),
    Case("lora_dropout", 0.0, _lora("lora_dropout")),
    Case("lora_target_modules", ["q_proj", "v_proj"], lambda b: sorted(b.lora.target_modules),
         expected=["q_proj", "v_proj"]),
    Case("lora_bias", "lora_only", _lora("bias")),
    Case("use_dora", True, _lora("use_dora")),
    Case("use_rslora", True, _lora("use_rslora")),
    Case("modules_to_save", ["lm_head"], lambda b: list(b.lora.modules_to_save)),
    Case("layers_to_transform", [1], lambda b: list(b.lora.layers_to_transform),
         companions={"lora_target_modules": ["q_proj", "v_proj"]}),
    # training
    Case("method", "dpo", lambda b: type(b.sft).__name__, expected="DPOConfig", companions={"train_file": "PAIRS"}),
    Case("beta", 0.3, _sft("beta"), companions={"method": "dpo", "train_file": "PAIRS"}),
    Case("learning_rate", 1e-3, _sft("learning_rate")),
    Case("num_train_epochs", 2.5, _sft("num_train_epochs")),
    Case("max_steps", 1, _sft("max_steps")),
    Case("per_device_train_batch_size", 3, _sft("per_device_train_batch_size")),
    Case("per_device_eval_batch_size", 5, _sft("per_device_eval_batch_size")),
    Case("gradient_accumulation_steps", 7, _sft("gradient_accumulation_steps")),
    Case("warmup_ratio", 0.0, _sft("warmup_steps")),
    Case("warmup_steps", 0, _sft("warmup_steps")),
    Case("weight_decay", 0.1, _sft("weight_decay")),
    Case("max_grad_norm", 0.0, _sft("max_grad_norm")),
    Case("lr_scheduler_type", "linear", lambda b: str(b.sft.lr_scheduler_type.value), expected="linear"),
    Case("lr_scheduler_kwargs", {"num_cycles": 0.25}, _sft("lr_scheduler_kwargs")),
    Case("seed", 0, lambda b: (b.sft.seed, b.sft.data_seed), expected=(0, 0)),
    Case("early_stopping_patience", 0, lambda b: b.stopper, expected=None),
    Case("early_stopping_threshold", 0.05, lambda b: b.stopper.info.threshold),
    # optimization
    Case("bf16", True, _sft("bf16")),
    Case("fp16", True, _sft("fp16")),
    Case("gradient_checkpointing", True, _sft("gradient_checkpointing")),
    Case("tf32", False, _sft("tf32")),  # true needs an Ampere GPU, which transformers checks for
    Case("optim", "adafactor", lambda b: str(b.sft.optim.value), expected="adafactor"),
    Case("parallelism", "fsdp", lambda b: (b.accelerate["distributed_type"], b.sft.gradient_checkpointing,
                                           b.accelerate["fsdp_config"]["fsdp_activation_checkpointing"]),
         expected=("FSDP", False, True), companions={"gradient_checkpointing": True}),
    Case("cpu_offload", True, lambda b: b.accelerate["fsdp_config"]["fsdp_offload_params"],
         companions={"parallelism": "fsdp"}),
    # logging
    Case("output_dir", "OUT", _sft("output_dir")),
    # transformers 5 reads the TensorBoard folder from TENSORBOARD_LOGGING_DIR only, which the runner sets from this
    Case("logging_dir", "/tmp/lorawiz-test-logs", lambda b: make.tensorboard_dir(b.resolved.config)),
    Case("logging_steps", 3, _sft("logging_steps")),
    Case("eval_strategy", "no", lambda b: str(b.sft.eval_strategy.value), expected="no",
         companions={"load_best_model_at_end": False, "early_stopping_patience": 0}),
    Case("eval_steps", 6, _sft("eval_steps"), companions={"save_steps": 12}),
    Case("evals_per_epoch", 2, lambda b: b.sft.eval_steps == -(-b.plan.steps_per_epoch // 2), expected=True),
    Case("saves_per_epoch", 1, lambda b: b.sft.save_steps % b.sft.eval_steps == 0
         and abs(b.sft.save_steps - b.plan.steps_per_epoch) <= b.sft.eval_steps, expected=True),
    Case("save_strategy", "epoch", lambda b: str(b.sft.save_strategy.value), expected="epoch",
         companions={"eval_strategy": "epoch"}),
    Case("save_steps", 9, _sft("save_steps")),
    Case("save_total_limit", 1, _sft("save_total_limit")),
    Case("load_best_model_at_end", False, _sft("load_best_model_at_end")),
    Case("metric_for_best_model", "eval_accuracy", _sft("metric_for_best_model")),
    Case("greater_is_better", True, _sft("greater_is_better"), companions={"metric_for_best_model": "accuracy"}),
    Case("report_to", [], _sft("report_to"), expected=[]),
    Case("run_name", "trial-7", _sft("run_name")),
    Case("push_to_hub", True, _sft("push_to_hub"), companions={"hub_model_id": "tester/tiny"}),
    Case("hub_model_id", "tester/tiny", _sft("hub_model_id")),
    Case("hub_private_repo", False, _sft("hub_private_repo")),
    Case("hub_strategy", "checkpoint", lambda b: str(b.sft.hub_strategy.value), expected="checkpoint"),
    # dataloader
    Case("dataloader_num_workers", 2, _sft("dataloader_num_workers")),
    Case("remove_unused_columns", False, _sft("remove_unused_columns")),
]


def test_every_knob_has_a_case():
    assert sorted(case.knob for case in CASES) == sorted(KNOBS)


def _pad_token_set(token: str) -> str:
    """What lorawiz.train.backends.hf does with pad_token, on builtin:tiny's tokenizer."""
    from transformers import AutoTokenizer

    from lorawiz.builtin import local_path
    from lorawiz.train.backends.hf import set_pad_token

    tokenizer = AutoTokenizer.from_pretrained(local_path("builtin:tiny"))
    set_pad_token(tokenizer, token)
    return tokenizer.pad_token


def _chat_rows(count: int, tag: str) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"{tag} report {i}: smoke on floor {i % 7}"},
                          {"role": "assistant", "content": "fire" if i % 2 else "medical"}]} for i in range(count)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from lorawiz.builtin import resolve_builtin

    root = tmp_path_factory.mktemp("knobs")
    paths = {"TRAIN": root / "train.jsonl", "OTHER_TRAIN": root / "other.jsonl", "VAL_FILE": root / "val.jsonl"}
    for key, count in (("TRAIN", ROWS), ("OTHER_TRAIN", 16), ("VAL_FILE", 7)):
        paths[key].write_text("".join(json.dumps(row) + "\n" for row in _chat_rows(count, key)))
    paths["PAIRS"] = root / "pairs.jsonl"
    paths["PAIRS"].write_text("".join(json.dumps({"prompt": row["messages"][:1], "chosen": row["messages"][1:],
                                                  "rejected": [{"role": "assistant", "content": "hazmat"}]}) + "\n"
                                      for row in _chat_rows(ROWS, "PAIRS")))
    paths["ADAPTER"] = root / "adapter"
    paths["ADAPTER"].mkdir()
    (paths["ADAPTER"] / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": ["v_proj", "q_proj"],
        "bias": "none", "base_model_name_or_path": "builtin:tiny"}))
    return {**{k: str(v) for k, v in paths.items()}, "TINY_PATH": resolve_builtin("builtin:tiny"), "ROOT": root,
            "CACHE_DIR": str(root / "tokenised"), "CACHE_PATH": root / "tokenised"}


def _fill(value: Any, files: dict) -> Any:
    if isinstance(value, list):
        return [_fill(item, files) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, files) for key, item in value.items()}
    return files.get(value, value) if isinstance(value, str) else value


def _base(files: dict, out: Path) -> dict[str, Any]:
    return {"model_name_or_path": "builtin:tiny", "train_file": files["TRAIN"], "output_dir": str(out)}


def _build(resolved: Any, files: dict, needs_data: bool, out: Path) -> Built:
    from lorawiz.train.data import load_run_data, prepare_data
    from lorawiz.train.sources import with_sources

    resolved = with_sources(resolved)  # as the runner does first
    inputs = gather(resolved, hardware=parse_hardware_spec("a100-80gb"))
    plan = make_plan(inputs)
    filled = fill_from_plan(resolved, plan)
    cfg = filled.config
    data = prepare_data(cfg, load_run_data(cfg)) if needs_data else None
    built = Built(filled, make.trainer_config(cfg, output_dir=cfg.logging.output_dir, on_gpu=False, train_rows=ROWS),
                  make.lora_config(cfg), make.quantization_config(cfg), make.model_kwargs(cfg),
                  make.early_stopping(cfg), plan, data)
    from lorawiz.train.distributed import accelerate_config

    built.accelerate = accelerate_config(cfg, processes=2, layer_class="LlamaDecoderLayer")
    out.mkdir(parents=True, exist_ok=True)
    write_run_config(out, filled)
    text = (out / "lorawiz.yaml").read_text()
    built.yaml = {name: value for section in yaml.safe_load(text).values() for name, value in section.items()}
    return built


def _check(case: Case, built: Built, files: dict) -> None:
    expected = _fill(case.value if case.expected == "SAME" else case.expected, files)
    value = _fill(case.value, files)
    assert case.arrived(built) == expected, f"{case.knob} = {value!r} did not reach the trainer"
    assert built.resolved.value(case.knob) == value
    assert built.yaml[case.knob] == value, f"lorawiz.yaml records {case.knob} = {built.yaml[case.knob]!r}"
    # and lorawiz.yaml re-runs the same value
    rerun = resolve_layers([defaults_layer(), read_config_file(built.resolved.config.logging.output_dir +
                                                               "/lorawiz.yaml")])
    assert rerun.value(case.knob) == value


def _values(case: Case, files: dict, out: Path) -> dict[str, Any]:
    values = {**_base(files, out), **{k: _fill(v, files) for k, v in case.companions.items()}}
    value = _fill(case.value, files)
    if case.knob == "output_dir":
        value = str(out)
    if case.knob == "datasets":
        del values["train_file"]  # the sources instead
    return values, value


@pytest.mark.parametrize("case", CASES, ids=[case.knob for case in CASES])
def test_a_knob_from_a_file_reaches_the_trainer_and_lorawiz_yaml(case, files, tmp_path):
    out = tmp_path / "run"
    values, value = _values(case, files, out)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**values, case.knob: value}))  # flat, as --config_file pipelines write it
    resolved = resolve_config(config)
    assert resolved.source(case.knob).kind == "file"
    built = _build(resolved, files, case.needs_data, out)
    _check(Case(case.knob, value, case.arrived, case.expected), built, files)


@pytest.mark.parametrize("case", CASES, ids=[case.knob for case in CASES])
def test_a_knob_from_set_reaches_the_trainer(case, files, tmp_path):
    out = tmp_path / "run"
    values, value = _values(case, files, out)
    items = [f"{SECTION_OF[name]}.{name}={json.dumps(v)}" for name, v in {**values, case.knob: value}.items()]
    resolved = resolve_config(None, set_items=items)
    assert resolved.source(case.knob).kind == "set"
    built = _build(resolved, files, case.needs_data, out)
    _check(Case(case.knob, value, case.arrived, case.expected), built, files)


FLAG_CASES = [case for case in CASES if case.knob in TYPED_FLAGS]


@pytest.mark.parametrize("case", FLAG_CASES, ids=[case.knob for case in FLAG_CASES])
def test_a_knob_from_its_flag_reaches_the_trainer(case, files, tmp_path):
    out = tmp_path / "run"
    values, value = _values(case, files, out)
    resolved = resolve_config(None, flags={**values, case.knob: value}, flag_names=flag_spellings())
    assert resolved.source(case.knob).kind == "flag"
    built = _build(resolved, files, case.needs_data, out)
    _check(Case(case.knob, value, case.arrived, case.expected), built, files)


@pytest.mark.parametrize("spelling", ["0", "seed=0", "training.seed=0"])
def test_seed_zero_in_every_spelling_is_seed_zero(spelling, files, tmp_path):
    import random

    out = tmp_path / "run"
    if spelling == "0":
        resolved = resolve_config(None, flags={**_base(files, out), "seed": 0}, flag_names=flag_spellings())
    else:
        resolved = resolve_config(None, flags=_base(files, out), flag_names=flag_spellings(), set_items=[spelling])
    built = _build(resolved, files, False, out)
    assert built.sft.seed == 0 and built.yaml["seed"] == 0
    make.set_seed(built.resolved.config)
    first = random.random()
    random.seed(0)
    assert first == random.random()


def test_max_steps_is_a_cap_not_a_target(files, tmp_path):
    """transformers trains max_steps even past num_train_epochs; lorawiz's max_steps only caps: a cap the epochs end
    before reaches the trainer as -1 (train by epochs), a cap that ends the run first as itself."""
    out = tmp_path / "run"
    for cap, expected in ((1000, -1), (2, 2)):
        resolved = resolve_config(None, flags={**_base(files, out), "max_steps": cap, "num_train_epochs": 1},
                                  flag_names=flag_spellings())
        built = _build(resolved, files, False, out)
        assert built.sft.max_steps == expected and built.sft.num_train_epochs == 1
        assert built.plan.steps == min(cap, built.plan.steps_per_epoch)


def test_the_unsloth_backend_receives_the_same_values(files, tmp_path):
    out = tmp_path / "run"
    flags = {**_base(files, out), "seed": 0, "lora_r": 4, "lora_alpha": 7, "lora_dropout": 0.0, "max_seq_length": 64,
             "gradient_checkpointing": True, "load_in_4bit": True}
    resolved = resolve_config(None, flags=flags, flag_names=flag_spellings(),
                              set_items=["use_rslora=true", "lora_bias=all", "modules_to_save=[lm_head]",
                                         "cache_dir=/tmp/c", "trust_remote_code=true"])
    cfg = _build(resolved, files, False, out).resolved.config
    model, peft = make.unsloth_model_kwargs(cfg), make.unsloth_peft_kwargs(cfg, "llama")
    assert (model["model_name"], model["max_seq_length"], model["load_in_4bit"], model["cache_dir"],
            model["trust_remote_code"]) == (files["TINY_PATH"], 64, True, "/tmp/c", True)
    assert (peft["r"], peft["lora_alpha"], peft["lora_dropout"], peft["random_state"], peft["bias"],
            peft["use_rslora"], peft["modules_to_save"], peft["use_gradient_checkpointing"],
            peft["max_seq_length"]) == (4, 7, 0.0, 0, "all", True, ["lm_head"], "unsloth", 64)
    assert peft["target_modules"] == make.UNSLOTH_ALL_LINEAR
    assert make.unsloth_peft_kwargs(cfg, "phi3")["target_modules"] == make.UNSLOTH_ALL_LINEAR_FUSED
