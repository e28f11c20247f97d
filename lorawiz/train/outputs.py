"""What a run leaves beside its checkpoints: lorawiz.yaml (the configuration it ran), the adapter and tokenizer,
all_results.json and a model card (lorawiz.publish.card). Every file is written atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lorawiz import __version__
from lorawiz.data.writers import atomic_output, normal_permissions

SECRET_WORDS = ("token", "secret", "password", "api_key")


NOT_SECRET = frozenset({"pad_token"})  # a vocabulary entry, not a credential


def redacted(values: dict[str, Any]) -> dict[str, Any]:
    return {k: ("<redacted>" if k not in NOT_SECRET and any(w in k.lower() for w in SECRET_WORDS) and v else v)
            for k, v in values.items()}


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
    # a derived logging_dir is left out: it follows --output-dir when the file re-runs, not this run's folder
    skip = {"logging_dir": resolved.source("logging_dir").kind == "derived",
            "run_name": resolved.source("run_name").kind == "derived",  # the new folder's name when re-run
            "train_file": resolved.source("train_file").kind == "derived",  # the mix of datasets, made again
            # computed from evals_per_epoch / saves_per_epoch, which the file keeps: computed again
            "eval_steps": bool(values["evals_per_epoch"]) and resolved.source("eval_steps").kind == "recommender",
            "save_steps": bool(values["saves_per_epoch"]) and resolved.source("save_steps").kind == "recommender"}
    write_config_file(output_dir / "lorawiz.yaml", redacted(values), header, comments, skip)


def check_saved_adapter(output_dir: Path) -> None:
    """peft saves only the keys of the state dict it recognises, silently: an adapter file with no tensors is a
    bug (seen with FSDP's checkpoint-wrapped names), never a result to report as done."""
    from safetensors import safe_open

    path = output_dir / "adapter_model.safetensors"
    if not path.exists():  # the backend saved in another form (Unsloth's own save, a test's stand-in)
        return
    with safe_open(str(path), framework="pt") as saved:
        if not list(saved.keys()):
            raise RuntimeError(f"{path} was saved without any tensors")


def save_outputs(trainer: Any, tokenizer: Any, resolved: Any, result: Any, output_dir: Path, model_name: str,
                 backend_name: str, data_stats: dict[str, Any], adapter_state: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
    """The adapter (PEFT form), tokenizer, all_results.json and a short model card; returns the final metrics.
    `adapter_state`: a sharded run's adapter, gathered from its shards (lorawiz.train.distributed)."""
    if adapter_state is not None:  # peft keeps the adapter's keys of it, as from an unsharded model
        from lorawiz.train.distributed import save_sharded_adapter

        save_sharded_adapter(trainer.accelerator.unwrap_model(trainer.model), output_dir, adapter_state)
    elif "ref" in getattr(trainer.model, "peft_config", {}):  # DPO's frozen reference copy stays out of the run
        trainer.model.save_pretrained(str(output_dir), selected_adapters=["default"])
    else:
        # the finished run is pushed by lorawiz.publish (its card, its file filter), not by save_model's own push
        trainer.args.push_to_hub = False
        trainer.save_model(str(output_dir))  # adapter_config.json + adapter_model.safetensors (the best, if loaded)
    check_saved_adapter(output_dir)
    if resolved.config.data.head == "sequence":  # the head's classes travel with the adapter (lorawiz.models)
        from lorawiz.models import LABELS_FILE

        with atomic_output(output_dir / LABELS_FILE, overwrite=True) as handle:
            json.dump({"labels": list(resolved.config.data.labels)}, handle, indent=2)
    tokenizer.save_pretrained(str(output_dir))
    normal_permissions(output_dir)  # safetensors writes owner-only (0600) files
    state = trainer.state
    metrics = dict(result.metrics)  # train_loss there is the mean over this process's steps, not the last loss
    evals = [entry for entry in state.log_history if "eval_loss" in entry]
    kept = state.best_model_checkpoint if trainer.args.load_best_model_at_end else None
    kept_step = int(Path(kept).name.rsplit("-", 1)[-1]) if kept else None
    # The kept model's evaluation: the one at the best checkpoint when it was loaded at the end (whatever
    # metric chose it), else the last one.
    kept_evals = [entry for entry in evals if entry.get("step") == kept_step] or evals
    if kept_evals:
        metrics["eval_loss"], metrics["eval_step"] = kept_evals[-1]["eval_loss"], kept_evals[-1].get("step")
    losses = [entry for entry in state.log_history if "loss" in entry]
    metrics.update({"final_loss": losses[-1]["loss"] if losses else None,
                    "final_loss_step": losses[-1].get("step") if losses else None, "epoch": state.epoch,
                    "train_rows": data_stats["train_rows"], "val_rows": data_stats["val_rows"],
                    "best_checkpoint": state.best_model_checkpoint, "kept_checkpoint": kept,
                    "global_step": state.global_step})
    with atomic_output(output_dir / "all_results.json", overwrite=True) as handle:
        json.dump(_jsonable(metrics), handle, indent=2)
    from lorawiz.run_report import write_loss_plot

    write_loss_plot(output_dir, state.log_history)  # RUN/loss.png; a plotting failure is a warning, never a failure
    from lorawiz.publish.card import write_card

    write_card(output_dir, resolved.config.model_dump(mode="json"), backend_name)
    return metrics


def _jsonable(metrics: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        out[key] = value
    return out
