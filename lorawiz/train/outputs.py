"""What a run leaves beside its checkpoints: lorawiz.yaml (the configuration it ran), the adapter and tokenizer,
all_results.json and a model card. Every file is written atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lorawiz import __version__
from lorawiz.data.writers import atomic_output

SECRET_WORDS = ("token", "secret", "password", "api_key")


def redacted(values: dict[str, Any]) -> dict[str, Any]:
    return {k: ("<redacted>" if any(w in k.lower() for w in SECRET_WORDS) and v else v) for k, v in values.items()}


def write_run_config(output_dir: Path, resolved: Any) -> None:
    """lorawiz.yaml: every value this run uses, with its source, re-runnable with `lorawiz train lorawiz.yaml`."""
    from lorawiz.config.files import write_config_file

    header = (f"# lorawiz {__version__}: the resolved configuration of this run (secrets redacted).\n"
              f"# Re-run: lorawiz train {output_dir.resolve() / 'lorawiz.yaml'} --output-dir NEW_DIR")
    from lorawiz.config.files import PATH_KNOBS, anchored

    values = resolved.flat()
    for name in PATH_KNOBS:  # absolute, so that the file re-runs from any folder
        if isinstance(values[name], str):
            values[name] = anchored(values[name], Path.cwd())
    comments = {name: resolved.source(name).explained for name in values}
    write_config_file(output_dir / "lorawiz.yaml", redacted(values), header, comments)


def save_outputs(trainer: Any, tokenizer: Any, resolved: Any, result: Any, output_dir: Path, model_name: str,
                 backend_name: str, data_stats: dict[str, Any]) -> dict[str, Any]:
    """The adapter (PEFT form), tokenizer, all_results.json and a short model card; returns the final metrics."""
    trainer.save_model(str(output_dir))  # adapter_config.json + adapter_model.safetensors (the best, if loaded)
    tokenizer.save_pretrained(str(output_dir))
    metrics = dict(result.metrics)
    evals = [entry for entry in trainer.state.log_history if "eval_loss" in entry]
    if evals:  # the kept model's evaluation: the best one when it was loaded at the end, else the last
        kept = trainer.state.best_metric if trainer.args.load_best_model_at_end else None
        metrics["eval_loss"] = kept if kept is not None else evals[-1]["eval_loss"]
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    metrics.update({"final_loss": losses[-1] if losses else None,
                    "train_rows": data_stats["train_rows"], "val_rows": data_stats["val_rows"],
                    "best_checkpoint": trainer.state.best_model_checkpoint, "global_step": trainer.state.global_step})
    with atomic_output(output_dir / "all_results.json", overwrite=True) as handle:
        json.dump(_jsonable(metrics), handle, indent=2)
    _write_model_card(output_dir, resolved.config, metrics, model_name, backend_name)
    return metrics


def _jsonable(metrics: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        out[key] = value
    return out


def _write_model_card(output_dir: Path, cfg: Any, metrics: dict[str, Any], model_name: str,
                      backend_name: str) -> None:
    from lorawiz.builtin import local_path

    model_name = local_path(model_name)  # what from_pretrained loads: a builtin: name's folder
    eval_loss = metrics.get("eval_loss")
    lines = [
        "---", f"base_model: {model_name}", "library_name: peft", "tags: [lora, lorawiz]", "---", "",
        f"# LoRA adapter for {model_name}", "",
        f"Trained with lorawiz {__version__} ({backend_name} backend) on `{cfg.data.train_file}`.", "",
        f"- LoRA rank {cfg.lora.lora_r}, alpha {cfg.lora.lora_alpha}, targets {cfg.lora.lora_target_modules}",
        f"- {'4-bit QLoRA' if cfg.model.load_in_4bit else '16-bit LoRA'}, learning rate {cfg.training.learning_rate}, "
        f"{cfg.training.num_train_epochs} epochs, max_seq_length {cfg.data.max_seq_length}",
        f"- steps: {metrics.get('global_step')}; final training loss: {metrics.get('train_loss')}"
        + (f"; evaluation loss: {eval_loss}" if eval_loss is not None else ""),
        "", "Load it with:", "", "```python", "from peft import PeftModel",
        "from transformers import AutoModelForCausalLM", "",
        f'base = AutoModelForCausalLM.from_pretrained("{model_name}")',
        f'model = PeftModel.from_pretrained(base, "{output_dir}")', "```", "",
        "The full configuration is in `lorawiz.yaml`; re-run it with `lorawiz train lorawiz.yaml`.", "",
    ]
    with atomic_output(output_dir / "README.md", overwrite=True) as handle:
        handle.write("\n".join(lines))
