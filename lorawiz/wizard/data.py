"""The wizard's data step: the file (Tab completes its path), what is in it and the task it suggests, then the
files made from it on the way (a clean chat copy, a validation split, a mix), each new or an identical one reused."""

from __future__ import annotations

import filecmp
import itertools
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lorawiz.errors import LorawizError
from lorawiz.wizard.prompter import Prompter

CREATED: list[Path] = []  # data files the wizard wrote on the way, removed again if the user cancels
LABEL_SAMPLE_ROWS = 2000  # rows read to tell a label set from free answers
MAX_LABELS = 50  # more distinct answers than this is not a label set (as lorawiz eval decides, eval/run.py)


def check_data(answer: str) -> str | None:
    path = Path(answer.strip()).expanduser()
    if not answer.strip():
        return "give the path of a data file"
    if answer.startswith("builtin:"):
        return None
    if not path.is_file():
        return f"{path} not found"
    return None


def choose_data(flag_value: str | None, prompter: Prompter) -> str | None:
    if flag_value:
        problem = check_data(flag_value)
        if problem:
            raise LorawizError(f"--data {flag_value}: {problem}.", hint="Give an existing data file.")
        return flag_value
    answer = prompter.required("--data", "Training data (JSONL, JSON, CSV/TSV, Parquet)", check_data, path=True)
    return answer.strip() if answer else None


def inspect_data(data: str, prompter: Prompter) -> Any:
    """The data's statistics (as `lorawiz inspect` measures them), said in one line."""
    from lorawiz.builtin import local_path
    from lorawiz.data.formats import ConvertOptions
    from lorawiz.data.stats import inspect_file

    stats = inspect_file(local_path(data), opts=ConvertOptions(preference=True))  # pairs too: they train with DPO
    bad = sum(e["count"] for e in stats.bad_rows.values())
    prompter.say(f"data: {stats.rows:,} rows, shape {stats.shape} ({stats.shape_reason}); {stats.length.unit} p50 "
                 f"{stats.length.p50:,}, p95 {stats.length.p95:,}, p99 {stats.length.p99:,}"
                 + (f"; {bad:,} bad rows" if bad else ""))
    return stats


def suggested_task(data: str, stats: Any) -> str:
    """classification when the answers are a few repeated short labels (the rule lorawiz eval applies), else chat."""
    if stats.shape == "classification":
        return "classification"
    if stats.shape == "preference":
        return "chat"
    from lorawiz.builtin import local_path
    from lorawiz.data.convert import iter_canonical
    from lorawiz.data.formats import ConvertOptions, RowProblem
    from lorawiz.data.rows import final_answer

    canonical = iter_canonical(Path(local_path(data)), stats.shape, ConvertOptions())
    rows = [row for _, row in itertools.islice(canonical, LABEL_SAMPLE_ROWS) if not isinstance(row, RowProblem)]
    answers = [final_answer(row) for row in rows]
    distinct = Counter(answer for answer in answers if answer)
    labels = (bool(distinct) and None not in answers and len(distinct) <= min(MAX_LABELS, len(rows) // 5)
              and all(len(answer.split()) <= 5 for answer in distinct))
    return "classification" if labels else "chat"


def check_share(answer: str) -> str | None:
    try:
        value = float(answer)
    except ValueError:
        return "give a number between 0 and 1"
    return None if 0 < value < 1 else "give a number between 0 and 1"


def _numbered(path: Path, kind: str, n: int) -> Path:
    """tickets.jsonl -> tickets.chat.jsonl, then tickets.chat-2.jsonl, tickets.chat-3.jsonl, ..."""
    return path.with_name(f"{path.stem}.{kind}{'' if n == 1 else f'-{n}'}.jsonl")


def _same_files(old: list[Path], new: list[Path]) -> bool:
    return all(o.exists() == f.exists() and (not f.exists() or filecmp.cmp(o, f, shallow=False))
               for o, f in zip(old, new, strict=True))


def write_or_reuse(names: Callable[[int], list[Path]], write: Callable[[list[Path], bool], Any],
                   overwrite: bool, prompter: Prompter) -> tuple[list[Path], Any]:
    """Write a step's files under the first free set of names (`names(n)`: every file the step may write), then
    keep an earlier set instead when it holds exactly the same bytes: a second run reuses the first run's copy,
    and a copy with other content is never replaced (unless --overwrite)."""
    if overwrite:
        files = names(1)
        report = write(files, True)
        CREATED.extend(p for p in files if p.exists())
        return files, report
    n = next(n for n in itertools.count(1) if not any(p.exists() for p in names(n)))
    fresh = names(n)
    report = write(fresh, False)
    written = [p for p in fresh if p.exists()]
    for earlier in range(1, n):
        if _same_files(names(earlier), fresh):
            for path in written:
                path.unlink()
            prompter.say(f"{names(earlier)[0]} is already there with the same content: using it")
            return names(earlier), report
    CREATED.extend(written)
    if n > 1:
        prompter.say(f"{names(1)[0]} exists with other content (kept): this one is {fresh[0]}")
    return fresh, report


def prepare_data(data: str, stats: Any, opts: Any, prompter: Prompter, task: str) -> tuple[str, str | None]:
    """Offer to convert (a shape other than chat, or bad rows), to hold out validation rows and (domain) to mix."""
    if data.startswith("builtin:"):
        return data, opts.val_data
    path = Path(data)
    bad = sum(e["count"] for e in stats.bad_rows.values())
    if stats.shape not in ("messages", "text", "preference") or bad:
        why = "has bad rows" if bad else f"is in {stats.shape} shape"
        if prompter.confirm(f"The file {why}. Write a clean chat copy to {_numbered(path, 'chat', 1)} (lorawiz format"
                            f"{' --skip-bad' if bad else ''})?", default=bool(bad)):
            path = _convert(path, bool(bad), opts.overwrite, prompter)
    val = opts.val_data
    if val is None and prompter.confirm("Hold out 10% of the rows as a validation file (lorawiz split)?",
                                        default=False):
        path, val = _split(path, opts.overwrite, prompter)
    if task == "domain" and prompter.confirm("Mix general instruction data into it against forgetting "
                                             "(lorawiz mix)?", default=False):
        general = prompter.text("General data file", "", check_data, path=True).strip()
        share = prompter.text("Share of general data in the mix (0-1)", "0.2", check_share)
        path = _mix(path, general, float(share), opts.overwrite, prompter)
    return str(path), val


def _convert(path: Path, skip_bad: bool, overwrite: bool, prompter: Prompter) -> Path:
    from lorawiz.data.convert import format_file

    def names(n: int) -> list[Path]:
        main = _numbered(path, "chat", n)  # and the rejects and label files format_file names after it
        return [main, main.with_name(main.stem + ".rejects.jsonl"), main.with_name(main.stem + ".meta.json")]

    files, report = write_or_reuse(names, lambda out, ok: format_file(path, out[0], skip_bad=skip_bad, overwrite=ok),
                                   overwrite, prompter)
    prompter.say(f"{report.rows_written:,} rows in {files[0]}")
    return files[0]


def _split(path: Path, overwrite: bool, prompter: Prompter) -> tuple[Path, str]:
    from lorawiz.data.split import SplitSizes, split_file

    def write(out: list[Path], ok: bool) -> Any:
        return split_file(path, {"train": out[0], "val": out[1]}, SplitSizes(val_ratio=0.1), overwrite=ok)

    files, report = write_or_reuse(lambda n: [_numbered(path, "train", n), _numbered(path, "val", n)], write,
                                   overwrite, prompter)
    prompter.say(f"split: {report.counts['train']:,} training rows in {files[0]}, {report.counts['val']:,} in "
                 f"{files[1]}")
    return files[0], str(files[1])


def _mix(path: Path, general: str, share: float, overwrite: bool, prompter: Prompter) -> Path:
    from lorawiz.data.mix import MixSource, mix_files

    def write(out: list[Path], ok: bool) -> Any:
        return mix_files([MixSource(str(path), 1 - share), MixSource(general, share)], out[0], overwrite=ok)

    files, report = write_or_reuse(lambda n: [_numbered(path, "mixed", n)], write, overwrite, prompter)
    prompter.say(f"mixed {report.total:,} rows into {files[0]}")
    return files[0]
