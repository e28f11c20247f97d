"""Complete checkpoints, run fingerprints and `--resume`: never resume from half a checkpoint or other data.

transformers writes a checkpoint folder piece by piece (weights, optimizer, RNG, then trainer_state.json), so a run
killed mid-save leaves a folder that looks like a checkpoint. After the Trainer has finished a save, the
`CompletionMarker` callback writes `.lorawiz-complete` into it, atomically; only marked folders count.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from lorawiz.data.writers import atomic_output
from lorawiz.errors import LorawizError

MARKER = ".lorawiz-complete"
RUN_INFO = "run.json"
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# Knobs that do not change what is learned: they may differ between a run and its resumption.
NOT_FINGERPRINTED = frozenset({
    "output_dir", "logging_steps", "report_to", "save_total_limit", "dataloader_num_workers", "cache_dir",
    "per_device_eval_batch_size", "eval_steps", "save_steps", "eval_strategy", "save_strategy",
    "load_best_model_at_end", "early_stopping_patience", "early_stopping_threshold", "num_train_epochs", "max_steps",
    # the out-of-memory fallback may change these while keeping the effective batch and the maths the same
    "per_device_train_batch_size", "gradient_accumulation_steps", "gradient_checkpointing",
})


def fingerprint_config(values: dict[str, Any]) -> str:
    kept = {k: v for k, v in sorted(values.items()) if k not in NOT_FINGERPRINTED}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fingerprint_files(paths: list[str | Path | None]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        if path is None:
            digest.update(b"\0none")
            continue
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def write_run_info(output_dir: Path, info: dict[str, Any]) -> None:
    with atomic_output(output_dir / RUN_INFO, overwrite=True) as handle:
        json.dump(info, handle, indent=2)


def read_run_info(output_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((output_dir / RUN_INFO).read_text())
    except (OSError, ValueError):
        return None


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """Marked checkpoint folders, oldest step first."""
    found = []
    for child in output_dir.glob("checkpoint-*") if output_dir.is_dir() else []:
        match = CHECKPOINT.match(child.name)
        if match and (child / MARKER).is_file() and (child / "trainer_state.json").is_file():
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def find_resume_checkpoint(output_dir: Path, resume: str) -> Path:
    """`auto`: the newest complete checkpoint in output_dir; otherwise the folder given, which must be complete."""
    if resume == "auto":
        done = complete_checkpoints(output_dir)
        if not done:
            raise LorawizError(f"--resume auto: no complete checkpoint in {output_dir}.",
                               hint="Start the run without --resume (add --overwrite to replace the folder).")
        return done[-1]
    path = Path(resume).expanduser()
    if not (path / MARKER).is_file():
        raise LorawizError(f"--resume {resume}: not a complete lorawiz checkpoint (no {MARKER}).",
                           hint="Use --resume auto, or a checkpoint-N folder that finished saving.")
    return path


def check_fingerprints(output_dir: Path, config_fp: str, data_fp: str) -> None:
    """Refuse to resume a run with another configuration or other data."""
    info = read_run_info(output_dir) or {}
    changed = [what for what, key, now in (("configuration", "config_fingerprint", config_fp),
                                           ("data", "data_fingerprint", data_fp))
               if info.get(key) not in (None, now)]
    if changed:
        raise LorawizError(f"cannot resume the run in {output_dir}: its {' and '.join(changed)} changed since it "
                           "started.", hint="Resume with the same configuration and data, or start a new run in "
                                            "another --output-dir (or --overwrite this one).")


def make_marker_callback(config_fp: str, data_fp: str) -> Any:
    from transformers import TrainerCallback

    class CompletionMarker(TrainerCallback):
        """After each save, mark the checkpoint complete (the Trainer calls on_save once the folder is written)."""

        def on_save(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                with atomic_output(folder / MARKER, overwrite=True) as handle:
                    json.dump({"step": state.global_step, "config_fingerprint": config_fp,
                               "data_fingerprint": data_fp}, handle)

    return CompletionMarker()
