"""Config loading, layering, provenance and validation (lorawiz/config/)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lorawiz.config.files import read_config_file
from lorawiz.config.layers import parse_set_items
from lorawiz.config.resolve import resolve_config
from lorawiz.config.schema import KNOBS, SECTION_OF, SECTIONS, knob_help
from lorawiz.errors import LorawizError, ProblemsError

# A flat config in the style of `accelerate launch train.py --config_file configs/default.json` pipelines:
# every key at the top level, with exactly lorawiz's key names.
FLAT_DEFAULT_JSON = {
    "model_name_or_path": "meta-llama/Llama-3.1-8B",
    "cache_dir": "/data/hf-cache",
    "trust_remote_code": False,
    "load_in_4bit": True,
    "load_in_8bit": False,
    "bnb_4bit_quant_type": "nf4",
    "bnb_4bit_compute_dtype": "bfloat16",
    "bnb_4bit_use_double_quant": True,
    "train_file": "data/train.jsonl",
    "validation_file": "data/val.jsonl",
    "val_split": 0.1,
    "max_seq_length": 512,
    "packing": False,
    "system_prompt": "You are a helpful assistant.",
    "task": "chat",
    "lora_r": 32,
    "lora_alpha": 32,
    "lora_dropout": 0.05,
    "lora_target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "lora_bias": "none",
    "use_dora": False,
    "use_rslora": False,
    "modules_to_save": None,
    "learning_rate": 2e-4,
    "num_train_epochs": 3,
    "max_steps": -1,
    "per_device_train_batch_size": 4,
    "per_device_eval_batch_size": 4,
    "gradient_accumulation_steps": 4,
    "warmup_steps": 100,
    "weight_decay": 0.0,
    "max_grad_norm": 0.3,
    "lr_scheduler_type": "cosine",
    "seed": 42,
    "early_stopping_patience": 2,
    "early_stopping_threshold": 0.01,
    "bf16": True,
    "fp16": False,
    "gradient_checkpointing": True,
    "optim": "paged_adamw_8bit",
    "output_dir": "./results",
    "logging_steps": 10,
    "eval_strategy": "steps",
    "eval_steps": 100,
    "save_strategy": "steps",
    "save_steps": 100,
    "save_total_limit": 3,
    "load_best_model_at_end": True,
    "metric_for_best_model": "eval_loss",
    "greater_is_better": False,
    "report_to": "tensorboard",
    "dataloader_num_workers": 4,
}


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(exc_info) -> list[str]:
    return [str(p) for p in exc_info.value.problems]


def test_every_knob_has_help_and_a_unique_name():
    names = [k.name for knobs in SECTIONS.values() for k in knobs]
    assert len(names) == len(set(names))
    for name in names:
        assert len(KNOBS[name].help) > 20, name
        assert knob_help(name).endswith(f"[{SECTION_OF[name]}.{name}]")


def test_flat_json_in_config_file_style_loads_unchanged(tmp_path):
    path = write(tmp_path, "default.json", json.dumps(FLAT_DEFAULT_JSON, indent=2))
    resolved = resolve_config(path)
    flat = resolved.flat()
    for key, value in FLAT_DEFAULT_JSON.items():
        expected = ["tensorboard"] if key == "report_to" else value
        assert flat[key] == expected, key
        assert resolved.sources[key].label == f"file {path}" and resolved.sources[key].kind == "file"
    assert resolved.config.lora.lora_r == 32
    assert resolved.config.training.learning_rate == pytest.approx(2e-4)


def test_schema_covers_exactly_the_documented_keys():
    # The flat file above lists every key of the schema but warmup_ratio (it uses warmup_steps),
    # assistant_only_loss (added with training, issue 5: the loss mask is configurable) and group_by_length
    # (issue 8: length-grouped batches, on by default through the recommender) and dataset_cache_dir (issue 15:
    # where tokenised data is cached), logging_dir and remove_unused_columns (issue 17: the keys of the documented
    # default.json in tests/fixtures/configs, which test_config_file_pipelines.py loads).
    assert set(KNOBS) == set(FLAT_DEFAULT_JSON) | {"warmup_ratio", "assistant_only_loss", "group_by_length",
                                                   "dataset_cache_dir", "logging_dir", "remove_unused_columns",
                                                   # issue 17, point 6: the schedules' settings and two knobs
                                                   "lr_scheduler_kwargs", "tf32", "layers_to_transform",
                                                   # point 5: what Axolotl configs set
                                                   "datasets", "evals_per_epoch", "saves_per_epoch", "pad_token",
                                                   # issue 18: how several GPUs share a run
                                                   "parallelism", "cpu_offload",
                                                   # issue 19: a sequence-classification head
                                                   "head", "labels",
                                                   # issue 19, point 1: preference tuning
                                                   "method", "beta", "from_adapter",
                                                   # issue 20: tracking and the Hub push
                                                   "run_name", "push_to_hub", "hub_model_id", "hub_private_repo",
                                                   "hub_strategy"}


def test_sectioned_yaml_and_mixed_layouts_load(tmp_path):
    path = write(tmp_path, "run.yaml", "model:\n  model_name_or_path: org/model\nlora:\n  lora_r: 8\n"
                                       "learning_rate: 1.0e-4\n")
    resolved = resolve_config(path)
    assert resolved.config.model.model_name_or_path == "org/model"
    assert resolved.config.lora.lora_r == 8
    assert resolved.config.training.learning_rate == pytest.approx(1e-4)


def test_yaml_scientific_notation_without_dot_is_a_number(tmp_path):
    # YAML 1.1 reads `2e-4` as a string; users write it that way all the time.
    path = write(tmp_path, "run.yaml", "training:\n  learning_rate: 2e-4\n")
    assert resolve_config(path).config.training.learning_rate == pytest.approx(2e-4)


def test_precedence_defaults_preset_file_set_flags(tmp_path):
    path = write(tmp_path, "run.yaml", "lora:\n  lora_r: 8\n  lora_alpha: 16\ntraining:\n  seed: 7\n")
    resolved = resolve_config(
        path,
        preset="default",
        set_items=["lora.lora_alpha=64", "seed=11"],
        flags={"seed": 13},
        flag_names={"seed": "--seed"},
    )
    cfg, src = resolved.config, {name: source.label for name, source in resolved.sources.items()}
    assert (cfg.training.weight_decay, src["weight_decay"]) == (0.01, "preset default")  # the pipeline's value
    assert (cfg.training.max_grad_norm, src["max_grad_norm"]) == (1.0, "preset default")
    assert (cfg.lora.lora_dropout, src["lora_dropout"]) == (0.05, "preset default")
    assert (cfg.lora.lora_r, src["lora_r"]) == (8, f"file {path}")
    assert (cfg.lora.lora_alpha, src["lora_alpha"]) == (64, "--set lora.lora_alpha")
    assert (cfg.training.seed, src["seed"]) == (13, "flag --seed")
    assert (cfg.lora.use_dora, src["use_dora"]) == (False, "default")


def test_a_later_layer_replaces_an_exclusive_partner(tmp_path):
    # The preset sets warmup_steps; a file that sets warmup_ratio means "use the ratio instead".
    path = write(tmp_path, "run.yaml", "warmup_ratio: 0.05\n")
    resolved = resolve_config(path, preset="default")
    assert resolved.config.training.warmup_ratio == pytest.approx(0.05)
    assert resolved.config.training.warmup_steps is None
    assert "cleared by warmup_ratio" in resolved.sources["warmup_steps"].label
    flags = resolve_config(preset="default", flags={"load_in_8bit": True})
    assert flags.config.model.load_in_8bit and not flags.config.model.load_in_4bit


def test_unknown_keys_get_did_you_mean(tmp_path):
    path = write(tmp_path, "run.yaml", "lora_rank: 16\ntraining:\n  learning_rte: 1.0e-4\neval_stratgy: steps\n")
    with pytest.raises(ProblemsError) as info:
        resolve_config(path)
    found = problems_of(info)
    assert len(found) == 3
    assert f'{path} line 1: unknown key "lora_rank". Did you mean "lora_r" (section "lora")?' in found
    assert f'{path} line 3: unknown key "learning_rte" in section "training". Did you mean "learning_rate"?' in found
    assert any('line 4' in p and '"eval_strategy"' in p for p in found)


def test_key_in_the_wrong_section_says_where_it_belongs(tmp_path):
    path = write(tmp_path, "run.yaml", "training:\n  lora_r: 16\n")
    with pytest.raises(ProblemsError) as info:
        resolve_config(path)
    assert problems_of(info) == [f'{path} line 2: "lora_r" belongs in section "lora", not "training". '
                                 "Move it under lora:."]


def test_every_problem_is_reported_together(tmp_path):
    path = write(tmp_path, "run.yaml", """\
lora:
  lora_r: 0
  lora_alpha: -4
  lora_dropout: 1.5
optimization:
  bf16: true
  fp16: true
  optim: adamw_8bt
training:
  warmup_ratio: 0.1
  warmup_steps: 10
  learnin_rate: 0.1
""")
    with pytest.raises(ProblemsError) as info:
        resolve_config(path, set_items=["training.lora_r=4"])
    found = "\n".join(problems_of(info))
    assert len(info.value.problems) == 8, found
    assert f"{path} line 2: lora.lora_r = 0: must be greater than 0" in found
    assert f"{path} line 3: lora.lora_alpha = -4: must be greater than 0" in found
    assert "lora.lora_dropout = 1.5: must be less than 1" in found
    assert 'Did you mean "adamw_8bit"?' in found
    assert "bf16 and fp16 are both true" in found
    assert "warmup_ratio and warmup_steps are both set" in found
    assert 'Did you mean "learning_rate"' in found
    assert '--set training.lora_r=4: "lora_r" belongs in section "lora"' in found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("eval_strategy: 'no'\nload_best_model_at_end: true\n", "load_best_model_at_end needs evaluations"),
        ("save_strategy: 'no'\nload_best_model_at_end: true\n", "load_best_model_at_end needs checkpoints"),
        ("eval_strategy: epoch\nsave_strategy: steps\n", "needs save_strategy to match eval_strategy"),
        ("eval_steps: 30\nsave_steps: 100\n", "save_steps (100) to be a multiple of eval_steps (30)"),
        ("eval_strategy: 'no'\nearly_stopping_patience: 2\nload_best_model_at_end: false\n",
         "early stopping needs evaluations"),
        ("val_split: 0\neval_strategy: steps\n", "evaluation is on but there is no validation data"),
        ("greater_is_better: true\n", "eval_loss is a loss"),
        ("load_in_4bit: true\nload_in_8bit: true\n", "load_in_4bit and load_in_8bit are both true"),
        ("beta: 0.2\n", "beta is DPO's setting, but the method is sft"),
        ("method: dpo\ntask: classification\nhead: sequence\n", "dpo tunes a language model's answers"),
        ("method: dpo\npacking: true\n", "dpo compares whole answers pair by pair"),
    ],
)
def test_cross_field_checks(tmp_path, text, expected):
    path = write(tmp_path, "run.yaml", text)
    with pytest.raises(ProblemsError) as info:
        resolve_config(path)
    assert any(expected in p for p in problems_of(info)), problems_of(info)


def test_defaults_follow_the_users_choices_instead_of_conflicting(tmp_path):
    resolved = resolve_config(write(tmp_path, "a.yaml", "val_split: 0\n"))
    cfg = resolved.config
    assert cfg.logging.eval_strategy == "no"
    assert cfg.logging.load_best_model_at_end is False
    assert cfg.training.early_stopping_patience == 0
    assert resolved.sources["eval_strategy"].label == "default (no validation data)"
    epoch = resolve_config(write(tmp_path, "b.yaml", "eval_strategy: epoch\n")).config
    assert epoch.logging.save_strategy == "epoch"
    assert resolve_config().config.logging.greater_is_better is False


def test_syntax_errors_name_the_line(tmp_path):
    bad_yaml = write(tmp_path, "bad.yaml", "lora:\n  lora_r: 8\n   lora_alpha: [1\n")
    with pytest.raises(ProblemsError) as info:
        resolve_config(bad_yaml)
    assert f"{bad_yaml} line 3" in str(info.value)
    bad_json = write(tmp_path, "bad.json", '{\n  "lora_r": 8,\n  "lora_alpha": ,\n}')
    with pytest.raises(ProblemsError) as info:
        resolve_config(bad_json)
    assert f"{bad_json} line 3 column 17" in str(info.value)


def test_top_level_must_be_a_mapping(tmp_path):
    with pytest.raises(ProblemsError, match="top level must be a mapping"):
        resolve_config(write(tmp_path, "list.yaml", "- lora_r\n"))


def test_missing_config_file_is_a_user_error(tmp_path):
    with pytest.raises(LorawizError) as info:
        resolve_config(tmp_path / "nope.yaml")
    assert info.value.exit_code == 2
    assert "nope.yaml not found" in info.value.message


def test_json_line_numbers_point_at_the_key(tmp_path):
    path = write(tmp_path, "c.json", '{\n  "lora": {\n    "lora_r": 8,\n    "seed": 1\n  }\n}')
    with pytest.raises(ProblemsError) as info:
        resolve_config(path)
    assert problems_of(info) == [f'{path} line 4: "seed" belongs in section "training", not "lora". '
                                 "Move it under training:."]


def test_set_items_parse_values_as_yaml():
    layer = parse_set_items(["lora.lora_target_modules=[q_proj, v_proj]", "use_dora=true", "max_steps=10",
                             "report_to=none", "learning_rate=3e-4"])
    assert layer.values["lora_target_modules"] == ["q_proj", "v_proj"]
    assert layer.values["use_dora"] is True and layer.values["max_steps"] == 10
    resolved = resolve_config(set_items=["lora_target_modules=q_proj,v_proj", "report_to=none",
                                         "bnb_4bit_compute_dtype=fp16", "learning_rate=3e-4"])
    assert resolved.config.lora.lora_target_modules == ["q_proj", "v_proj"]
    assert resolved.config.logging.report_to == []
    assert resolved.config.model.bnb_4bit_compute_dtype == "float16"
    assert resolved.config.training.learning_rate == pytest.approx(3e-4)


def test_set_item_without_equals_is_reported():
    layer = parse_set_items(["lora_r"])
    assert [p.message for p in layer.problems] == ["expected KEY=VALUE, e.g. --set lora.lora_r=16"]


def test_read_config_file_keeps_line_numbers(tmp_path):
    layer = read_config_file(write(tmp_path, "x.yaml", "# comment\nlora:\n  lora_r: 4\n"))
    assert layer.sources["lora_r"].where.endswith("x.yaml line 3")


# --- property-based: whatever a user writes, the reader answers with a config or a clean error --------------


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["all-linear", "nf4", "steps", "no", "2e-4", "fp16"]))
KEYS = st.one_of(st.sampled_from(sorted(KNOBS)), st.sampled_from(sorted(SECTIONS)), st.text(max_size=10))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
                      max_leaves=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.dictionaries(KEYS, VALUES, max_size=6), as_json=st.booleans())
def test_any_mapping_gives_a_config_or_a_clean_error(tmp_path, data, as_json):
    import yaml

    path = tmp_path / ("c.json" if as_json else "c.yaml")
    path.write_text(json.dumps(data) if as_json else yaml.safe_dump(data), encoding="utf-8")
    try:
        resolve_config(path)
    except LorawizError as exc:
        assert exc.exit_code == 2 and str(exc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200), suffix=st.sampled_from([".yaml", ".json", ".yml"]))
def test_any_text_gives_a_config_or_a_clean_error(tmp_path, text, suffix):
    path = tmp_path / f"c{suffix}"
    path.write_text(text, encoding="utf-8")
    try:
        resolve_config(path)
    except LorawizError as exc:
        assert exc.exit_code == 2


@settings(max_examples=100, deadline=None)
@given(items=st.lists(st.text(max_size=30), max_size=4))
def test_any_set_items_give_a_config_or_a_clean_error(items):
    try:
        resolve_config(set_items=items)
    except LorawizError as exc:
        assert exc.exit_code == 2


def test_yes_no_on_off_are_strings_where_a_knob_takes_strings(tmp_path):
    """YAML 1.1 would read `no` as False, and eval_strategy would refuse it; booleans still read yes/no."""
    path = tmp_path / "c.yaml"
    path.write_text("eval_strategy: no\nsave_strategy: no\nload_in_4bit: yes\nbf16: off\n")
    resolved = resolve_config(path, set_items=["logging.load_best_model_at_end=no", "report_to=[]"])
    assert (resolved.value("eval_strategy"), resolved.value("save_strategy")) == ("no", "no")
    assert (resolved.value("load_in_4bit"), resolved.value("bf16"), resolved.value("load_best_model_at_end")) == (
        True, False, False)
    assert resolve_config(None, set_items=["eval_strategy=no", "load_best_model_at_end=false"]).value(
        "eval_strategy") == "no"


@pytest.mark.parametrize("text", ['eval_strategy: no\nsave_strategy: no\n',
                                  'eval_strategy: false\nsave_strategy: false\n',
                                  'logging:\n  eval_strategy: No\n  save_strategy: NO\n'])
def test_strategies_written_as_yaml_no_or_false_mean_no(tmp_path, text):
    path = write(tmp_path, "run.yaml", text + "load_best_model_at_end: false\nearly_stopping_patience: 0\n")
    resolved = resolve_config(path)
    assert (resolved.value("eval_strategy"), resolved.value("save_strategy")) == ("no", "no")


def test_strategies_false_in_json_and_no_in_set_mean_no(tmp_path):
    path = write(tmp_path, "run.json", json.dumps({"eval_strategy": False, "load_best_model_at_end": False,
                                                   "early_stopping_patience": 0}))
    assert resolve_config(path).value("eval_strategy") == "no"
    assert resolve_config(set_items=["save_strategy=no", "load_best_model_at_end=false"]).value("save_strategy") == "no"


@pytest.mark.parametrize("text", ["evaluation_strategy: epoch\n", "logging:\n  evaluation_strategy: epoch\n"])
def test_evaluation_strategy_is_read_as_the_older_name_of_eval_strategy(tmp_path, text):
    path = write(tmp_path, "run.yaml", text)
    resolved = resolve_config(path)
    assert resolved.value("eval_strategy") == "epoch"
    assert resolved.source("eval_strategy").where == f"{path} line {text.count(chr(10))}"
    assert resolve_config(set_items=["evaluation_strategy=epoch"]).value("eval_strategy") == "epoch"


def test_both_names_of_eval_strategy_in_one_file_is_a_problem(tmp_path):
    path = write(tmp_path, "run.yaml", "eval_strategy: steps\nevaluation_strategy: epoch\n")
    with pytest.raises(ProblemsError) as exc_info:
        resolve_config(path)
    assert any('"eval_strategy" is set twice' in p for p in problems_of(exc_info))
