"""Who owns an output: lorawiz replaces only what it wrote, and one process at a time writes an output folder.

The one rule behind every --overwrite, read from markers lorawiz writes:
- a training run (run.json, the run's lorawiz.yaml, marked checkpoint-N folders) is replaced only when the folder
  holds nothing but what a run writes, and no other run;
- a merge output (MERGE_MARKER, listing its files) is replaced only when it holds nothing but those files;
- a config file is replaced only when `lorawiz init` wrote it (INIT_HEADER);
- a report page only when `lorawiz report` wrote it (REPORT_HEADER), and never inside a run;
- a data or results file (format, split, mix, eval --json) may be replaced, never a folder, never an input.
A folder that looks like any training run (lorawiz's or another trainer's checkpoint-N) is never written into or
over by another command. `hold_lock` keeps a second process out of an output while one writes it.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import json
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from lorawiz.errors import LorawizError

RUN_INFO = "run.json"  # written by every lorawiz training run before it loads the model
RUN_CONFIG = "lorawiz.yaml"
RUN_CONFIG_HEADER = re.compile(r"# lorawiz \S+: the resolved configuration of this run")  # train/outputs.py
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
CHECKPOINT_MARKER = ".lorawiz-complete"  # in a checkpoint-N folder that finished saving (train/checkpoints.py)
MERGE_MARKER = ".lorawiz-merge"  # in every merge output: what was merged and the files written
INIT_HEADER = "# lorawiz config written by `lorawiz init`."  # the first line of every config init writes
LOCK = ".lorawiz.lock"
# What a training run writes into its folder (transformers, PEFT, the tokenizer, TensorBoard, lorawiz itself, and
# lorawiz eval's default results file); anything else there is the user's, and --overwrite keeps out.
RUN_CONTENTS = (
    RUN_INFO, RUN_CONFIG, "metrics.jsonl", "training.log", "all_results.json", "train_results.json",
    "eval_results.json", "trainer_state.json", "training_args.bin", "README.md", "demo_results.json", "eval-*.json",
    "adapter_config.json", "adapter_model.*", "tokenizer*", "special_tokens_map.json", "added_tokens.json",
    "chat_template.*", "vocab.*", "merges.txt", "spiece.model", "sentencepiece.*.model", "checkpoint-*",
    "tmp-checkpoint-*", "runs", "logs", LOCK, ".*.tmp", "loss.png",
)
SHOWN = 5  # names listed in a message


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def _first_line(path: Path) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.readline().rstrip("\n")
    except OSError:
        return ""


def _names(paths: Iterable[Path | str]) -> str:
    names = [Path(p).name for p in paths]
    return ", ".join(names[:SHOWN]) + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def _is_run_config(path: Path) -> bool:
    return path.is_file() and bool(RUN_CONFIG_HEADER.match(_first_line(path)))


def is_training_run(folder: Path) -> bool:
    """Any sign of a training run, lorawiz's or another trainer's (checkpoint-N folders): never written over."""
    if not folder.is_dir():
        return False
    if (folder / RUN_INFO).is_file() or _is_run_config(folder / RUN_CONFIG):
        return True
    return any(CHECKPOINT.match(child.name) and child.is_dir() for child in _children(folder))


def is_lorawiz_run(folder: Path) -> bool:
    """A folder `lorawiz train` wrote: its run.json, its lorawiz.yaml, or a checkpoint it marked complete."""
    try:
        if "lorawiz" in json.loads((folder / RUN_INFO).read_text()):
            return True
    except (OSError, ValueError, TypeError):
        pass
    return _is_run_config(folder / RUN_CONFIG) or any(
        CHECKPOINT.match(child.name) and (child / CHECKPOINT_MARKER).is_file() for child in _children(folder))


def runs_inside(folder: Path) -> list[Path]:
    """The training runs directly inside `folder` (its own checkpoint-N folders are not runs)."""
    return [child for child in _children(folder) if not CHECKPOINT.match(child.name) and is_training_run(child)]


def foreign_entries(folder: Path) -> list[Path]:
    """What in `folder` a training run does not write."""
    return [child for child in _children(folder) if not any(fnmatch.fnmatch(child.name, p) for p in RUN_CONTENTS)]


def check_run_replaceable(folder: Path, flag: str = "--overwrite") -> None:
    """Refuse unless `folder` is a lorawiz training run holding only what a run writes, and no other run."""
    nested = runs_inside(folder)
    if nested:
        raise LorawizError(f"{folder} holds other training runs ({_names(nested)}); {flag} never replaces a folder "
                           "of runs.", hint=f"Give the run's own folder (e.g. --output-dir {nested[0]}), or a new "
                                            "one.")
    if not is_lorawiz_run(folder):
        raise LorawizError(f"{folder} is not a lorawiz training run; {flag} replaces only a folder lorawiz train "
                           "wrote.", hint="Pick another --output-dir (a new or empty folder).")
    foreign = foreign_entries(folder)
    if foreign:
        raise LorawizError(f"{folder} holds {_names(foreign)}, which lorawiz did not write; {flag} deletes only a "
                           "training run's own files.", hint="Move those out of the folder, or pick another "
                                                             "--output-dir.")


def clear_run(folder: Path) -> None:
    """Delete what a training run wrote in `folder` (checked with check_run_replaceable first), never anything else;
    keep the folder and its lock. run.json and lorawiz.yaml go last, so a folder cleared halfway still reads as a
    run."""
    ours = [c for c in _children(folder) if c.name != LOCK and any(fnmatch.fnmatch(c.name, p) for p in RUN_CONTENTS)]
    for entry in sorted(ours, key=lambda c: c.name in (RUN_INFO, RUN_CONFIG)):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)


def write_merge_marker(folder: Path, info: dict) -> None:
    """Record in a finished merge folder (before it is moved into place) what it is and every file in it."""
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    (folder / MERGE_MARKER).write_text(json.dumps({**info, "files": files}, indent=2) + "\n", encoding="utf-8")


def _merge_files(folder: Path) -> set[str] | None:
    try:
        return set(json.loads((folder / MERGE_MARKER).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_merge_output(output: Path, adapter: Path, overwrite: bool) -> None:
    """`merge -o`: a new folder, or (--overwrite) a previous merge output; never the adapter, a training run,
    a folder inside one or holding one."""
    out, source = output.resolve(), adapter.resolve()
    if out == Path.cwd().resolve():
        raise LorawizError(f"-o {output} is the current folder; the merged model needs a folder of its own.",
                           hint="Give a new folder, e.g. -o merged/my-model.")
    if out == source:
        raise LorawizError(f"-o {output} is the adapter folder itself; writing the merged model there would replace "
                           "the training run.", hint="Give a new folder, e.g. -o merged/my-model.")
    if source.is_relative_to(out):
        raise LorawizError(f"-o {output} contains the adapter {adapter}; writing there would delete it.",
                           hint="Give a new folder outside it, e.g. -o merged/my-model.")
    run = next((p for p in (out, *out.parents) if is_training_run(p)), None)
    if run is not None:
        where = "is" if run == out else f"is inside {run}, which is"
        raise LorawizError(f"-o {output} {where} a training run; the merged model never goes into a run.",
                           hint="Give a folder outside the run, e.g. -o merged/my-model.")
    if not output.exists():
        return
    if not output.is_dir():
        raise LorawizError(f"-o {output} is a file; the merged model is a folder.", hint="Give a new folder.")
    if not overwrite:
        raise LorawizError(f"{output} already exists.",
                           hint="Pick another -o, or pass --overwrite to replace a previous merge output.")
    listed = _merge_files(output)
    if listed is None:
        nested = runs_inside(output)
        held = f" (it holds the training runs {_names(nested)})" if nested else ""
        raise LorawizError(f"{output} is not a lorawiz merge output (no {MERGE_MARKER}){held}; --overwrite replaces "
                           "only a folder lorawiz merge wrote.", hint="Pick another -o (a new folder).")
    extra = [p for p in output.rglob("*") if p.is_file() and p.name != MERGE_MARKER
             and str(p.relative_to(output)) not in listed]
    if extra:
        raise LorawizError(f"{output} holds {_names(extra)}, which lorawiz merge did not write; --overwrite would "
                           "delete it.", hint="Move those out of the folder, or pick another -o.")


def is_init_config(path: Path) -> bool:
    return path.is_file() and _first_line(path).startswith(INIT_HEADER)


def check_config_replaceable(path: Path, flag: str = "--config-out") -> None:
    """An existing config file may be replaced only when `lorawiz init` wrote it."""
    if path.is_dir():
        raise LorawizError(f"{flag} {path} is a folder.", hint=f"Give a file path: {flag} FILE.yaml.")
    if is_init_config(path):
        return
    what = (f"it is the configuration of the training run in {path.parent}" if _is_run_config(path)
            else "lorawiz init did not write it")
    raise LorawizError(f"{path} already exists and {what}; it is kept, even with --overwrite.",
                       hint=f"Pass {flag} NEW_FILE.")


REPORT_HEADER = "<!DOCTYPE html><!-- written by lorawiz report -->"  # the first line of every page report writes


def check_report_output(path: Path, flag: str = "-o") -> None:
    """`lorawiz report -o`: a new file, or one lorawiz report wrote (its first line); never a folder, never a file
    inside a training run (its folder would then hold a file no run writes)."""
    if path.is_dir():
        raise LorawizError(f"{flag} {path} is a folder.", hint=f"Give a file path: {flag} report.html.")
    run = next((p for p in path.absolute().parents if is_training_run(p)), None)
    if run is not None:
        raise LorawizError(f"{flag} {path} is inside the training run {run}; a report never goes into a run.",
                           hint=f"Write it beside the run, e.g. {flag} {run.name}-report.html.")
    if not path.parent.is_dir():
        raise LorawizError(f"{flag} {path}: the folder {path.parent} does not exist.",
                           hint=f"Create it first: mkdir -p {path.parent}")
    if path.exists() and not _first_line(path).startswith(REPORT_HEADER):
        raise LorawizError(f"{path} already exists and lorawiz report did not write it; it is kept.",
                           hint=f"Pass another {flag} path.")
    if not os.access(path.parent, os.W_OK):  # the page is written beside it, then moved over it
        raise LorawizError(f"cannot write {flag} {path}: no permission to write in {path.parent}.",
                           hint=f"Pick a folder you can write to, or make it writable (chmod u+w {path.parent}).")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def check_file_output(path: Path, overwrite: bool, flag: str = "--overwrite",
                      inputs: Iterable[str | Path | None] = ()) -> None:
    """A file output (data, results): --overwrite replaces a file, never a folder, never an input of the command."""
    if path.is_dir():
        raise LorawizError(f"{path} is a directory; {flag} replaces a file, never a folder.",
                           hint="Give a file path for the output.")
    for source in inputs:
        if source is not None and Path(source).exists() and _same_file(path, Path(source)):
            raise LorawizError(f"{path} is the input file {source}; an input is never written over.",
                               hint="Write the output to another path.")
    if path.exists() and not overwrite:
        raise LorawizError(f"{path} already exists.", hint=f"Choose another output path, or pass {flag} to replace it.")
    if not path.parent.exists():
        raise LorawizError(f"folder {path.parent} does not exist.", hint=f"Create it first: mkdir -p {path.parent}")


# --- one process per output -------------------------------------------------------------------------------------

_HELD: dict[str, list] = {}  # lock path -> [fd, depth]: a process re-entering its own lock (demo -> train) is fine


def _holder(fd: int, tries: int = 1) -> dict:
    for attempt in range(tries):  # a holder writes its pid just after it takes the lock: wait a moment for it
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        with contextlib.suppress(ValueError):
            found = json.loads(text) if text.strip() else None
            if isinstance(found, dict):
                return found
        if attempt + 1 < tries:
            time.sleep(0.05)
    return {}


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _busy(subject: str, flag: str, holder: dict, lock: Path) -> LorawizError:
    pid, host = holder.get("pid", "unknown"), holder.get("host", "an unknown host")
    what = f" (`{holder['command']}`, started {holder.get('started', '?')})" if holder.get("command") else ""
    here = host == socket.gethostname()
    hint = (f"Wait for it to finish, stop it (kill {pid}), or use another {flag}." if here else
            f"Wait for it to finish, or use another {flag}. If that process is gone (its machine restarted), "
            f"delete {lock}.")
    return LorawizError(f"{subject} is in use by another lorawiz process: pid {pid} on {host}{what}.", hint=hint)


def _try_flock(fd: int) -> bool | None:
    """True: locked; False: held by another process; None: this filesystem has no flock."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return None
        raise
    return True


def _acquire(lock: Path, subject: str, flag: str, say: Callable[[str], None]) -> int:
    for _ in range(50):
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            locked = _try_flock(fd)
            if locked is False:
                raise _busy(subject, flag, _holder(fd, tries=20), lock)
            previous = _holder(fd)
            if os.fstat(fd).st_ino != os.stat(lock).st_ino:  # its last holder removed it meanwhile: lock the new one
                os.close(fd)
                continue
        except FileNotFoundError:
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            raise
        if previous.get("pid") is not None and previous.get("pid") != os.getpid():
            # With flock, a lock file nobody holds was left by a process that died (kill -9, a crash); without
            # flock, a live pid on this host still holds it. Another host's pid cannot be checked here.
            same_host = previous.get("host") == socket.gethostname()
            if not same_host or (locked is None and _alive(previous.get("pid"))):
                os.close(fd)
                raise _busy(subject, flag, previous, lock)
            say(f"note: took over the lock of pid {previous['pid']}, which is no longer running ({lock}).")
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join(["lorawiz", *sys.argv[1:]])}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(mine).encode(), 0)
        os.fsync(fd)
        return fd
    raise LorawizError(f"could not take the lock {lock}: it kept changing.", hint="Try again.")


@contextlib.contextmanager
def hold_lock(lock: Path, subject: str, flag: str, say: Callable[[str], None] = lambda text: None) -> Iterator[None]:
    """Hold `lock` (a file, created if missing) for the block: a second process is refused with the holder's pid
    and host; a lock left by a dead process on this host is taken over with a note. Released however the block
    ends (the kernel releases it even after kill -9; the file left behind then reads as stale)."""
    key = os.path.abspath(lock)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    fd = _acquire(lock, subject, flag, say)
    _HELD[key] = [fd, 1]
    try:
        yield
    finally:
        del _HELD[key]
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                os.unlink(lock)
        os.close(fd)


@contextlib.contextmanager
def hold_output_dir(folder: Path, say: Callable[[str], None] = lambda text: None,
                    flag: str = "--output-dir") -> Iterator[None]:
    """Create `folder` if needed and hold its lock (LOCK inside it); folders created here and left empty are
    removed again, so a run refused or stopped before writing anything leaves nothing behind."""
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with hold_lock(folder / LOCK, str(folder), flag, say):
            yield
    finally:
        for path in created:
            try:
                path.rmdir()
            except OSError:
                break


def merge_lock(output: Path) -> Path:
    """The lock of a merge output: beside it, since the folder itself appears only when the merge is complete."""
    return output.parent / f".{output.name}{LOCK}"
