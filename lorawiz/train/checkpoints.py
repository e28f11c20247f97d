"""The output folder, complete checkpoints, run fingerprints and `--resume`: never mix two runs in one folder,
never resume from half a checkpoint or other data, never train a finished run again.

transformers writes a checkpoint folder piece by piece (weights, optimizer, RNG, then trainer_state.json), so a run
killed mid-save leaves a folder that looks like a checkpoint. After the Trainer has finished a save, the
`CompletionMarker` callback writes `.lorawiz-complete` into it, atomically; only marked folders count.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lorawiz.data.writers import atomic_output, normal_permissions
from lorawiz.errors import LorawizError
from lorawiz.ownership import CHECKPOINT, LOCK, RUN_INFO, check_run_replaceable, clear_run, is_training_run
from lorawiz.ownership import CHECKPOINT_MARKER as MARKER

# Knobs that do not change what is learned: they may differ between a run and its resumption.
NOT_FINGERPRINTED = frozenset({
    "output_dir", "logging_dir", "remove_unused_columns", "logging_steps", "report_to", "save_total_limit",
    "dataloader_num_workers", "cache_dir", "run_name", "push_to_hub", "hub_model_id", "hub_private_repo",
    "hub_strategy",
    "per_device_eval_batch_size", "eval_steps", "save_steps", "eval_strategy", "save_strategy",
    "load_best_model_at_end", "early_stopping_patience", "early_stopping_threshold", "num_train_epochs", "max_steps",
    # the out-of-memory fallback may change these while keeping the effective batch and the maths the same
    "per_device_train_batch_size", "gradient_accumulation_steps", "gradient_checkpointing",
})


def fingerprint_config(values: dict[str, Any]) -> str:
    kept = {k: v for k, v in sorted(values.items()) if k not in NOT_FINGERPRINTED}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


def hash_files(paths: list[Path | None]) -> str | None:
    """SHA-256 of the files' bytes, in order (a missing validation file counts as none); None when one of them
    is not a local file (a Hub dataset: its commit, in DataFingerprint.key, is exact)."""
    digest = hashlib.sha256()
    for path in paths:
        if path is None:
            digest.update(b"\0none")
            continue
        if not Path(path).is_file():
            return None
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


class DataFingerprint:
    """What a run records of its data files, so that it is never resumed on other data.

    `key` is made of the content keys the tokenised cache computed anyway (each file's size, mtime and sampled
    blocks; a Hub dataset's commit): free, and compared first. `full()` is the SHA-256 of the files' bytes,
    computed in a background thread from the start of the run (file reads and hashlib release the GIL), so a
    large file does not hold up the first step. It is compared when the key differs (a file touched or copied,
    maybe unchanged) and for runs recorded before keys existed.
    """

    def __init__(self, paths: list[Path | None], keys: list[str | None], background: bool = True) -> None:
        self.key = hashlib.sha256("\0".join(key or "none" for key in keys).encode()).hexdigest()[:16]
        self._paths = paths
        self._full: list[str | None] = []
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._hash, name="lorawiz-data-hash", daemon=True)
            self._thread.start()

    def _hash(self) -> None:
        try:
            self._full.append(hash_files(self._paths))
        except OSError:  # the file went away mid-run: nothing to record
            self._full.append(None)

    def full(self) -> str | None:
        if self._thread is not None:
            self._thread.join()
        elif not self._full:
            self._hash()
        return self._full[0]

    def same_as(self, recorded: dict[str, Any]) -> bool:
        """Whether a run or checkpoint that recorded `recorded` was trained on these files."""
        if recorded.get("data_key") == self.key:
            return True
        if recorded.get("data_fingerprint") is None:
            return recorded.get("data_key") is None  # nothing recorded, nothing to compare
        return self.full() == recorded["data_fingerprint"]

    def record(self) -> dict[str, Any]:
        return {"data_key": self.key, "data_fingerprint": self.full()}


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
    found = [(int(CHECKPOINT.match(child.name).group(1)), child)
             for child in (output_dir.glob("checkpoint-*") if output_dir.is_dir() else []) if is_complete(child)]
    return [path for _, path in sorted(found)]


def is_complete(folder: Path) -> bool:
    return bool(CHECKPOINT.match(folder.name)) and (folder / MARKER).is_file() and \
        (folder / "trainer_state.json").is_file()


def find_resume_checkpoint(output_dir: Path, resume: str) -> Path:
    """`auto`: the newest complete checkpoint in output_dir; otherwise the folder given, which must be complete."""
    if resume == "auto":
        done = complete_checkpoints(output_dir)
        if not done:
            raise LorawizError(f"--resume auto: no complete checkpoint in {output_dir} to continue from.",
                               hint="Start the run over with --overwrite (without --resume), or pick another "
                                    "--output-dir.")
        return done[-1]
    path = Path(resume).expanduser()
    if not path.is_dir():
        raise LorawizError(f"--resume {resume}: no such checkpoint folder.",
                           hint="Use --resume auto, or the path of a checkpoint-N folder.")
    if not is_complete(path):
        raise LorawizError(f"--resume {resume}: not a complete lorawiz checkpoint (a checkpoint-N folder with "
                           f"{MARKER} and trainer_state.json); it never finished saving, or is no checkpoint.",
                           hint="Use --resume auto (the newest complete one), or a checkpoint-N folder that finished "
                                "saving.")
    return path


def check_fingerprints(output_dir: Path, config_fp: str, data: DataFingerprint, checkpoint: Path | None = None
                       ) -> None:
    """Refuse to resume a run (or a checkpoint given with --resume PATH) with another configuration or other data."""
    info = read_run_info(output_dir) or {}
    if checkpoint is not None:
        with contextlib.suppress(OSError, ValueError, TypeError):  # the marker holds the fingerprints it was saved with
            info = {**info, **json.loads((checkpoint / MARKER).read_text())}
    changed = [what for what, same in (("configuration", info.get("config_fingerprint") in (None, config_fp)),
                                       ("data", data.same_as(info))) if not same]
    if changed:
        raise LorawizError(f"cannot resume the run in {output_dir}: its {' and '.join(changed)} changed since it "
                           "started.", hint="Resume with the same configuration and data, or start a new run in "
                                            "another --output-dir (or --overwrite this one).")


def mark_finished(output_dir: Path, global_step: int, cfg: Any) -> None:
    """Record in run.json that the run ended normally, with the step it reached and the length it was asked for."""
    info = read_run_info(output_dir) or {}
    info["finished"] = {"global_step": global_step, "max_steps": cfg.training.max_steps,
                        "num_train_epochs": cfg.training.num_train_epochs}
    write_run_info(output_dir, info)


def finished_run(output_dir: Path, cfg: Any) -> dict[str, Any] | None:
    """The `finished` record of a run that ended normally and has nothing left to train for `cfg` (same length
    asked, or max_steps already reached); None when there is training left, or no finished run."""
    done = (read_run_info(output_dir) or {}).get("finished")
    if not isinstance(done, dict) or not all((output_dir / name).is_file()
                                             for name in ("all_results.json", "adapter_config.json")):
        return None
    same_length = (done.get("max_steps"), done.get("num_train_epochs")) == (cfg.training.max_steps,
                                                                             cfg.training.num_train_epochs)
    step = done.get("global_step")
    reached = step is not None and 0 < cfg.training.max_steps <= int(step)
    return done if same_length or reached else None


def half_started(output_dir: Path) -> bool:
    """A run stopped before it saved anything worth keeping: no complete checkpoint, no adapter, no results."""
    return not complete_checkpoints(output_dir) and not any(
        (output_dir / name).exists() for name in ("all_results.json", "adapter_config.json"))


def check_resume_flags(resume: str | None, overwrite: bool) -> None:
    if resume and overwrite:
        raise LorawizError(f"--resume {resume} and --overwrite together: --resume continues the run in the output "
                           "folder, --overwrite deletes it first.",
                           hint="Keep --resume to continue the run, or use --overwrite alone to start it over.")


def check_output_dir(output_dir: Path, resume: str | None, overwrite: bool,
                     say: Callable[[str], None] = lambda text: None) -> str | None:
    """Refuse to mix runs or to delete what lorawiz did not write; return the --resume that applies (None: start).

    A non-empty folder needs --resume (the same run) or --overwrite (a lorawiz run holding only its own files). A
    run stopped before its first checkpoint has nothing to keep: it starts again, with or without --resume auto.
    """
    check_resume_flags(resume, overwrite)
    entries = [c for c in output_dir.iterdir() if c.name != LOCK] if output_dir.is_dir() else []
    if not entries:
        if resume == "auto":
            raise LorawizError(f"--resume auto: {output_dir} holds no run to resume.",
                               hint="Start it without --resume.")
        return resume  # a checkpoint given by path may continue into a new folder
    run = is_training_run(output_dir)
    if resume and not run:
        raise LorawizError(f"--resume: {output_dir} holds files but no training run.",
                           hint="Check --output-dir: it must be the folder of the run to continue.")
    if resume and (resume != "auto" or complete_checkpoints(output_dir) or not half_started(output_dir)):
        return resume
    if overwrite:
        check_run_replaceable(output_dir)
        clear_run(output_dir)
        say(f"--overwrite: removed the previous run in {output_dir}")
        return None
    if run and half_started(output_dir):
        check_run_replaceable(output_dir, flag="starting the run again")
        clear_run(output_dir)
        say(f"note: {output_dir} holds a run that stopped before its first checkpoint; starting it again from the "
            "beginning.")
        return None
    if run:
        raise LorawizError(f"{output_dir} already holds a training run.",
                           hint=f"Resume it with lorawiz train {output_dir / 'lorawiz.yaml'} --resume auto, replace "
                                "it with --overwrite, or pick another --output-dir.")
    raise LorawizError(f"{output_dir} already holds files that are not a lorawiz run.",
                       hint="Pick another --output-dir (a new or empty folder); --overwrite replaces only a training "
                            "run.")


def make_marker_callback(config_fp: str, data: DataFingerprint) -> Any:
    from transformers import TrainerCallback

    class CompletionMarker(TrainerCallback):
        """After each save, mark the checkpoint complete (the Trainer calls on_save once the folder is written)."""

        def on_save(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                normal_permissions(folder)  # safetensors writes the checkpoint's weights owner-only
                with atomic_output(folder / MARKER, overwrite=True) as handle:
                    json.dump({"step": state.global_step, "config_fingerprint": config_fp, **data.record()},
                              handle)

    return CompletionMarker()


# torch.save on a full disk raises a RuntimeError from its zip writer that names no errno ("[enforce fail at
# inline_container.cc] unexpected pos", "PytorchStreamWriter failed writing file ...: file write failed").
TORCH_WRITE_FAILURE = ("inline_container", "PytorchStreamWriter", "iostream error", "file write failed")
NEARLY_FULL_BYTES = 64 * 2**20  # below this, a failed torch write is taken for a full disk


class FullDiskStops:
    """`with FullDiskStops(output_dir, resume_command):` around training. A full disk at any write (a checkpoint,
    the logs, the final adapter) stops the run with a user error naming the last complete checkpoint: the Trainer
    writes a new checkpoint in full before it deletes an old one, so the earlier ones are intact."""

    def __init__(self, output_dir: Path, resume_command: str) -> None:
        self.output_dir = output_dir
        self.resume_command = resume_command
        self._hook: Any = None

    def __enter__(self) -> FullDiskStops:
        import threading

        self._hook = threading.excepthook

        def quiet_when_full(args: Any) -> None:
            """TensorBoard's writer thread fails first and prints a traceback; its error reaches the training loop,
            which stops with the one message below."""
            if not (isinstance(args.exc_value, Exception) and disk_is_full(args.exc_value, self.output_dir)):
                self._hook(args)

        threading.excepthook = quiet_when_full
        return self

    def __exit__(self, kind, exc, tb) -> None:
        import threading

        threading.excepthook = self._hook
        if exc is None or not isinstance(exc, Exception) or not disk_is_full(exc, self.output_dir):
            return
        raise disk_full_error(self.output_dir, self.resume_command) from exc


def disk_is_full(exc: BaseException, output_dir: Path) -> bool:
    from lorawiz.errors import DISK_FULL, find_os_error, free_bytes

    found = find_os_error(exc)
    if found is not None:
        return found[0] in DISK_FULL
    text = str(exc)
    free = free_bytes(output_dir)
    return any(sign in text for sign in TORCH_WRITE_FAILURE) and free is not None and free < NEARLY_FULL_BYTES


def disk_full_error(output_dir: Path, resume_command: str) -> LorawizError:
    from lorawiz.errors import format_bytes, free_bytes

    done = complete_checkpoints(output_dir)
    last_step = int(CHECKPOINT.match(done[-1].name).group(1)) if done else -1
    cut = [child.name for child in sorted(output_dir.glob("checkpoint-*"))
           if CHECKPOINT.match(child.name) and int(CHECKPOINT.match(child.name).group(1)) > last_step
           and not is_complete(child)]
    left = f" ({', '.join(cut)} was cut short: --resume skips it, and deleting it frees space)" if cut else ""
    message = (f"the disk holding {output_dir} is full ({format_bytes(free_bytes(output_dir))} free); training "
               f"stopped.")
    if done:
        return LorawizError(message, hint=f"The last complete checkpoint is {done[-1]}{left}. Free some space, then "
                                          f"resume with: {resume_command}")
    return LorawizError(message, hint=f"No checkpoint was complete yet{left}. Free some space (or pick another "
                                      "--output-dir), then run the same command again.")
