"""The model card and all_results.json (lorawiz/train/outputs.py save_outputs) carry the run's final numbers,
taken from a real Trainer's log: the last training loss, the epochs reached, the steps, and the evaluation of
the model that was kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lorawiz.config.resolve import resolve_config
from lorawiz.train.outputs import save_outputs
from tests.unit.train.tiny_trainer import make_trainer


class Tokenizer:
    """Stands in for the tokenizer save_outputs saves beside the adapter (the model here has none)."""

    def save_pretrained(self, folder: str) -> None:
        (Path(folder) / "tokenizer_config.json").write_text("{}")


def _resolved(tmp_path, **flags):
    return resolve_config(None, flags={"model_name_or_path": "builtin:tiny", "train_file": "train.jsonl",
                                       "output_dir": str(tmp_path), **flags})


def _save(tmp_path, trainer, result, **flags):
    metrics = save_outputs(trainer, Tokenizer(), _resolved(tmp_path, **flags), result, tmp_path, "builtin:tiny",
                           "hf", {"train_rows": 8, "val_rows": 2})
    return metrics, (tmp_path / "README.md").read_text(), json.loads((tmp_path / "all_results.json").read_text())


def test_the_card_shows_the_last_loss_the_epochs_reached_and_the_kept_models_eval(tmp_path):
    # The eval loss rises at every evaluation, so the best checkpoint (step 2) is the one loaded at the end.
    trainer = make_trainer(tmp_path, [], max_steps=8, load_best_model_at_end=True, metric_for_best_model="eval_loss")
    result = trainer.train()
    log = trainer.state.log_history
    last_loss = [e for e in log if "loss" in e][-1]
    evals = {e["step"]: e["eval_loss"] for e in log if "eval_loss" in e}
    assert last_loss["loss"] != pytest.approx(result.metrics["train_loss"])  # the mean is not the last loss
    assert evals[2] < evals[8]

    metrics, card, saved = _save(tmp_path, trainer, result, num_train_epochs=3, max_steps=8)

    assert metrics["final_loss"] == last_loss["loss"] and saved["final_loss"] == last_loss["loss"]
    assert metrics["eval_loss"] == evals[2] and saved["eval_step"] == 2
    assert f"final training loss: {last_loss['loss']:.4f} (step 8)" in card
    assert f"evaluation loss of the kept model (checkpoint-2): {evals[2]:.4f} (step 2, 2 validation rows)" in card
    assert f"{result.metrics['train_loss']:.4f}" not in card
    # 8 steps of 2 rows over 8 rows: 2 epochs reached of the 3 asked for, because max_steps capped the run.
    assert "- 8 steps, 2.00 of 3 epochs, capped at max_steps 8" in card
    assert f"lorawiz train {tmp_path.resolve() / 'lorawiz.yaml'} --output-dir NEW_DIR" in card


def test_without_the_best_loaded_the_card_shows_the_last_evaluation(tmp_path):
    trainer = make_trainer(tmp_path, [], max_steps=6, load_best_model_at_end=False)
    result = trainer.train()
    last_eval = [e for e in trainer.state.log_history if "eval_loss" in e][-1]

    metrics, card, _ = _save(tmp_path, trainer, result, load_best_model_at_end=False, early_stopping_patience=0)

    assert metrics["eval_loss"] == last_eval["eval_loss"] and metrics["kept_checkpoint"] is None
    assert f"evaluation loss of the kept model (the final weights): {last_eval['eval_loss']:.4f} (step 6" in card


def test_a_run_without_evaluation_says_nothing_of_an_eval_loss(tmp_path):
    trainer = make_trainer(tmp_path, [], max_steps=4, eval_strategy="no")
    metrics, card, _ = _save(tmp_path, trainer, trainer.train(), eval_strategy="no", load_best_model_at_end=False,
                             early_stopping_patience=0)
    assert "eval_loss" not in metrics and "evaluation loss" not in card
    assert "final training loss" in card
