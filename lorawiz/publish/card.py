"""The model card of a run or a merged model, built with huggingface_hub's ModelCard and ModelCardData.

The card's metadata is what the Hub indexes: base_model (a Hub id only: the Hub refuses a local path there),
library_name, pipeline_tag, tags, datasets and the eval results as a model-index. Its text says what was trained,
how, the final numbers, each `lorawiz eval` result and how to load it. PEFT's own card data (written by
save_pretrained) is kept and completed, not thrown away.
"""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorawiz import __version__
from lorawiz.errors import LorawizError
from lorawiz.ownership import MERGE_MARKER, RUN_CONFIG


@dataclass
class Facts:
    """What a folder says about itself: its configuration (lorawiz.yaml), metrics and evaluations."""

    folder: Path
    config: dict[str, dict[str, Any]]
    base: str | None
    adapter: bool
    metrics: dict[str, Any] = field(default_factory=dict)
    evals: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (file name, eval-*.json contents)

    def setting(self, section: str, key: str) -> Any:
        return (self.config.get(section) or {}).get(key)


def hub_id(name: str | None) -> str | None:
    """`name` when it is a Hub repository id (namespace/name, not a local path or builtin:), else None."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not name or name.startswith("builtin:") or Path(name).expanduser().exists() or name.count("/") != 1:
        return None
    try:
        validate_repo_id(name)
    except HFValidationError:
        return None
    return name


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_facts(folder: Path, config: dict[str, dict[str, Any]] | None = None) -> Facts:
    """The facts of a lorawiz run folder, an adapter folder or a merged model folder; `config` (sections of
    values) instead of its lorawiz.yaml."""
    import yaml

    config_path = folder / RUN_CONFIG
    if config is None:
        try:
            config = yaml.safe_load(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
        except (OSError, yaml.YAMLError) as exc:
            raise LorawizError(f"{config_path}: cannot be read ({exc}).",
                               hint="Give a folder lorawiz train or lorawiz merge wrote.") from exc
        config = config if isinstance(config, dict) else {}
    adapter = (folder / "adapter_config.json").is_file()
    base = (_json(folder / "adapter_config.json").get("base_model_name_or_path") if adapter
            else _json(folder / MERGE_MARKER).get("base"))
    base = (config.get("model") or {}).get("model_name_or_path") or base
    evals = [(path.name, _json(path)) for path in sorted(folder.glob("eval-*.json"))]
    return Facts(folder, config, base, adapter, _json(folder / "all_results.json"), [e for e in evals if e[1]])


def build_card(folder: Path, *, repo_id: str | None = None, base_model: str | None = None,
               backend: str | None = None, config: dict[str, dict[str, Any]] | None = None) -> Any:
    """The ModelCard of `folder` (a run, adapter or merged model); `repo_id` is where it will live on the Hub,
    `base_model` a Hub id to name when the run's base was a local folder, `config` the run's values when its
    lorawiz.yaml is not the one to read."""
    from huggingface_hub import ModelCard, ModelCardData

    facts = read_facts(folder, config)
    base_id = hub_id(base_model) or hub_id(facts.base)
    if base_model and base_id != base_model:
        raise LorawizError(f"--base-model {base_model}: not a Hub repository id.",
                           hint="Give the base model's id on the Hub, e.g. --base-model Qwen/Qwen3-4B.")
    data = _peft_card_data(folder)
    data.update({k: v for k, v in {
        "base_model": base_id,
        "library_name": "peft" if facts.adapter else "transformers",
        "pipeline_tag": "text-classification" if facts.setting("data", "head") == "sequence" else "text-generation",
        "datasets": _datasets(facts) or None,
        "model_name": repo_id.split("/")[-1] if repo_id else folder.resolve().name,
    }.items() if v is not None})
    data["tags"] = _tags(facts, data.get("tags"))
    card_data = ModelCardData(**data, eval_results=_eval_results(facts) or None)
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + _body(facts, base_id, repo_id, backend))


def check_card(card: Any) -> None:
    """Refuse metadata the Hub would refuse, offline: a base_model or dataset that is not a repository id."""
    for key in ("base_model", "datasets"):
        value = getattr(card.data, key, None)
        for name in [value] if isinstance(value, str) else value or []:
            if hub_id(name) != name:
                raise LorawizError(f"model card: {key} {name!r} is not a Hub repository id (the Hub refuses it).",
                                   hint="Name the Hub id with --base-model, or leave it out.")


def write_card(folder: Path, config: dict[str, dict[str, Any]], backend: str | None = None) -> None:
    """README.md of a finished run (`config`: its values by section), atomically."""
    from lorawiz.data.writers import atomic_output

    card = build_card(folder, backend=backend, config=config)
    check_card(card)
    with atomic_output(folder / "README.md", overwrite=True) as handle:
        handle.write(str(card))


def _peft_card_data(folder: Path) -> dict[str, Any]:
    """The metadata already in the folder's README.md (PEFT's save_pretrained writes base_model, library_name and
    tags), kept where it is valid."""
    from huggingface_hub import ModelCard

    path = folder / "README.md"
    if not path.is_file():
        return {}
    try:
        data = ModelCard.load(path, ignore_metadata_errors=True).data.to_dict()
    except Exception:  # noqa: BLE001 - an unreadable old card is replaced, not a reason to stop
        return {}
    data.pop("model-index", None)
    data.pop("eval_results", None)
    if data.get("base_model") and not hub_id(data["base_model"]):
        data.pop("base_model")  # PEFT records the local path it loaded; the Hub refuses that
    return {k: v for k, v in data.items() if v is not None}


def _datasets(facts: Facts) -> list[str]:
    names = [facts.setting("data", "train_file")]
    names += [entry.get("path") for entry in facts.setting("data", "datasets") or [] if isinstance(entry, dict)]
    return sorted({hub_id(name) for name in names if hub_id(name)})


def _tags(facts: Facts, existing: Any) -> list[str]:
    tags = list(existing or [])
    method = facts.setting("training", "method") or "sft"
    wanted = ["lorawiz", "peft", "qlora" if facts.setting("model", "load_in_4bit") else "lora", method]
    if method != "sft" or facts.setting("data", "head") != "sequence":
        wanted.append("trl")
    if not facts.adapter:
        wanted.append("merged")
    return tags + [tag for tag in wanted if tag not in tags]


def _eval_results(facts: Facts) -> list[Any]:
    """model-index entries: the tuned model's loss and perplexity on each eval data, its macro-F1, its preference
    accuracy (from each eval-*.json), and the run's own validation loss."""
    from huggingface_hub import EvalResult

    results = []
    kind = "text-classification" if facts.setting("data", "head") == "sequence" else "text-generation"
    if isinstance(facts.metrics.get("eval_loss"), int | float):
        data = facts.setting("data", "validation_file") or "held-out split"
        results.append(EvalResult(task_type=kind, dataset_type=str(data), dataset_name=str(data),
                                  metric_type="loss", metric_name="validation loss",
                                  metric_value=round(float(facts.metrics["eval_loss"]), 4)))
    for _, report in facts.evals:
        tuned = (report.get("results") or {}).get("fine_tuned") or {}
        data = str(report.get("data") or "eval data")
        values = [("loss", "loss", (tuned.get("loss") or {}).get("loss")),
                  ("perplexity", "perplexity", (tuned.get("loss") or {}).get("perplexity")),
                  ("f1", "macro F1", ((tuned.get("classification") or {}).get("as given") or {}).get("macro_f1")),
                  ("accuracy", "preference accuracy", (tuned.get("preference") or {}).get("accuracy"))]
        for metric, name, value in values:
            if isinstance(value, int | float) and math.isfinite(value):
                results.append(EvalResult(task_type=kind, dataset_type=data, dataset_name=data, metric_type=metric,
                                          metric_name=name, metric_value=round(float(value), 4)))
    return results


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) and math.isfinite(value) else str(value)


def _summary(facts: Facts) -> list[str]:
    """What was trained and how far: rank, precision, rate, steps and epochs, the last and the kept losses."""
    from lorawiz.config.schema import format_value

    setting, metrics = facts.setting, facts.metrics
    quantized = ("4-bit QLoRA" if setting("model", "load_in_4bit") else "8-bit LoRA" if setting("model", "load_in_8bit")
                 else "LoRA")
    precision = "bf16" if setting("optimization", "bf16") else "fp16" if setting("optimization", "fp16") else "fp32"
    max_steps = setting("training", "max_steps")
    cap = f", capped at max_steps {max_steps}" if isinstance(max_steps, int) and max_steps > 0 else ""
    epochs = metrics.get("epoch")
    lines = [f"- LoRA rank {setting('lora', 'lora_r')}, alpha {setting('lora', 'lora_alpha')}, targets "
             f"{format_value(setting('lora', 'lora_target_modules'))}",
             f"- {quantized} in {precision}, learning rate {format_value(setting('training', 'learning_rate'))}, "
             f"max_seq_length {setting('data', 'max_seq_length')}"]
    if metrics:
        lines += [f"- {metrics.get('global_step')} steps, "
                  + (f"{epochs:.2f} of " if isinstance(epochs, int | float) else "")
                  + f"{format_value(setting('training', 'num_train_epochs'))} epochs{cap}",
                  f"- final training loss: {_number(metrics.get('final_loss'))} "
                  f"(step {metrics.get('final_loss_step')})"]
    if metrics.get("eval_loss") is not None:
        kept = Path(metrics["kept_checkpoint"]).name if metrics.get("kept_checkpoint") else "the final weights"
        lines.append(f"- evaluation loss of the kept model ({kept}): {_number(metrics['eval_loss'])} "
                     f"(step {metrics.get('eval_step')}, {metrics.get('val_rows')} validation rows)")
    labels = setting("data", "labels") or []
    if setting("data", "head") == "sequence" and labels:
        lines.append(f"- a sequence-classification head over {len(labels)} labels: {', '.join(labels)}")
    return lines


def _eval_tables(facts: Facts) -> list[str]:
    lines: list[str] = []
    for name, report in facts.evals:
        results = report.get("results") or {}
        lines += ["", f"### `lorawiz eval` on `{report.get('data')}` ({name})", "",
                  "| | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
        for label, pick in (("loss", lambda r: (r.get("loss") or {}).get("loss")),
                            ("perplexity", lambda r: (r.get("loss") or {}).get("perplexity")),
                            ("macro F1", lambda r: ((r.get("classification") or {}).get("as given") or {})
                             .get("macro_f1")),
                            ("preference accuracy", lambda r: (r.get("preference") or {}).get("accuracy"))):
            values = [pick(result or {}) for result in results.values()]
            if any(v is not None for v in values):
                lines.append(f"| {label} | " + " | ".join(_number(v) if v is not None else "-" for v in values)
                             + " |")
    return lines


def _load_snippet(facts: Facts, base: str, where: str) -> list[str]:
    lines = ["", "Load it with:", "", "```python"]
    if not facts.adapter:
        return lines + ["from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                        f'model = AutoModelForCausalLM.from_pretrained("{where}")',
                        f'tokenizer = AutoTokenizer.from_pretrained("{where}")', "```"]
    auto, head = "AutoModelForCausalLM", ""
    labels = facts.setting("data", "labels") or []
    if facts.setting("data", "head") == "sequence":  # the score head's classes, in order (also in labels.json)
        auto, head = "AutoModelForSequenceClassification", (f", num_labels={len(labels)}, "
                                                            f"id2label={dict(enumerate(labels))}")
    return lines + ["from peft import PeftModel", f"from transformers import {auto}, AutoTokenizer", "",
                    f'base = {auto}.from_pretrained("{base}"{head})',
                    f'model = PeftModel.from_pretrained(base, "{where}")',
                    f'tokenizer = AutoTokenizer.from_pretrained("{where}")', "```"]


def _body(facts: Facts, base_id: str | None, repo_id: str | None, backend: str | None) -> str:
    from lorawiz.builtin import local_path

    base = base_id or (local_path(facts.base) if facts.base else "BASE_MODEL")  # builtin: names load from a folder
    where = repo_id or str(facts.folder)
    kind = "LoRA adapter" if facts.adapter else "Merged model"
    train_file = facts.setting("data", "train_file")
    lines = [f"# {kind} for {base}", "",
             f"Trained with lorawiz {__version__}" + (f" ({backend} backend)" if backend else "")
             + f", method {facts.setting('training', 'method') or 'sft'}"
             + (f", on `{train_file}`." if train_file else "."), ""]
    if facts.base and not base_id:
        lines += [f"The base was loaded from `{facts.base}`, which is not a Hub id.", ""]
    if facts.config:
        lines += _summary(facts)
    lines += _eval_tables(facts)
    lines += _load_snippet(facts, base, where)
    if facts.config:
        config = (facts.folder.resolve() / RUN_CONFIG) if repo_id is None else Path(RUN_CONFIG)
        lines += ["", "The full configuration is in `lorawiz.yaml`; train it again with:", "", "```bash",
                  f"{shlex.join(['lorawiz', 'train', str(config), '--output-dir'])} NEW_DIR", "```"]
    return "\n".join(lines) + "\n"
