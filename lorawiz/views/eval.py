"""The `lorawiz eval` report as tables; pure: a report in, a Rich renderable (or plain lines) out.

Plain output keeps each table as tab-separated lines, easy to cut and grep; rich is imported where it is used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lorawiz.eval.report import EvalReport


@dataclass
class _Table:
    headers: list[str]
    rows: list[list[str]]
    title: str | None = None


def render_report(report: EvalReport, plain: bool) -> Any:
    """The report: plain lines (a list of str, tables tab-separated) when `plain`, else a Rich renderable."""
    parts: list[Any] = [*_summary(report), *_preference(report), *_classification(report), *_samples(report, plain),
                        *_lm_eval(report), *_forgetting(report), *_better(report)]
    return _plain_lines(parts) if plain else _rich_group(parts)


def _preference(report: EvalReport) -> list[Any]:
    """Preference pairs: how often each model finds the chosen answer likelier, and the tuned model's reward."""
    scores = {role: report.results[role].preference for role in report.roles}
    if not any(scores.values()):
        return []
    compared = _compared(report)

    def row(name: str, values: list[float], shown: Any, change: str) -> list[str]:
        return [name, *map(shown, values), *([change] if compared else [])]

    accuracy = [scores[role].accuracy for role in report.roles]
    margin = [scores[role].margin for role in report.roles]
    rows = [row("preference accuracy", accuracy, lambda v: f"{v:.1%}",
                f"{(accuracy[-1] - accuracy[0]) * 100:+.1f} pts"),
            row("log-prob margin (chosen - rejected)", margin, lambda v: f"{v:.3f}", f"{margin[-1] - margin[0]:+.3f}")]
    pairs = scores[report.roles[0]].pairs
    parts: list[Any] = [_Table(_headers(report), rows, f"Preference pairs on {report.data} ({pairs:,} pairs): the "
                                                       "chosen answer likelier than the rejected one")]
    if report.rewards is not None:
        parts.append(f"reward accuracy {report.rewards.accuracy:.1%}, reward margin {report.rewards.margin:.4f}: how "
                     "often (and by how much) fine-tuning raised the chosen answer's likelihood over the base more "
                     "than the rejected one's")
    return parts


def _summary(report: EvalReport) -> list[Any]:
    """The header line, the notes and the loss tables, with the forgetting check."""
    what = f"adapter on {report.target.base}" if report.target.is_adapter else "model"
    rows = f"{report.rows:,} rows" + (f" (a fixed sample of {report.total_rows:,})"
                                      if report.rows < report.total_rows else "")
    compared = (f"{report.target.path} ({what})" if not report.sides else
                f"{report.sides['A'].name} (A) against {report.sides['B'].name} (B)")
    parts: list[Any] = [f"eval {compared} on {report.data}: {rows}; task {report.task} ({report.task_source})"]
    parts += [f"note: {note}" for note in report.notes]
    if any(report.results[role].loss is not None for role in report.roles):  # a sequence head has no token loss
        parts.append(_Table(_headers(report), _loss_rows(report, "loss"),
                            f"Loss on {report.data} (the assistant's answers)"))
    if report.general_data:
        parts.append(_Table(_headers(report), _loss_rows(report, "general"),
                            f"{'General data' if report.sides else 'Forgetting check'}: every token of "
                            f"{report.general_data}"))
        rise = report.change("general", "perplexity")
        threshold = report.forgetting_threshold
        if report.sides:  # neither side is the base: which one is better says it (_better)
            rise = None
        if report.forgetting is not None:
            parts.append(f"warning: perplexity on general data worsened by {rise:.1%} (more than {threshold:.0%}): "
                         "the model has forgotten some of what it knew. Mix general data into training (lorawiz "
                         "mix), or lower the learning rate, the epochs or lora_r.")
        elif rise is not None:
            parts.append(f"forgetting check passed: perplexity on general data changed by {rise:+.1%} (the "
                         f"warning is for more than +{threshold:.0%}).")
    return parts


def _compared(report: EvalReport) -> bool:
    return len(report.roles) == 2


def _headers(report: EvalReport) -> list[str]:
    return ["", *(report.names[role] for role in report.roles), *(["change"] if _compared(report) else [])]


def _loss_rows(report: EvalReport, attribute: str) -> list[list[str]]:
    compared = _compared(report)
    results = [getattr(report.results[role], attribute) for role in report.roles]
    table = []
    for metric in ("loss", "perplexity"):
        change = [_percent(report.change(attribute, metric))] if compared else []
        table.append([metric, *(_number(getattr(r, metric)) for r in results), *change])
    table.append(["tokens scored", *(f"{r.tokens:,}" for r in results), *([""] if compared else [])])
    return table


def _classification(report: EvalReport) -> list[Any]:
    """Accuracy and how labels were found for each prompt, per-class scores, confusion matrices, the verdict."""
    if report.task != "classification":
        return []
    roles, names = report.roles, report.names
    columns = [(role, variant) for role in roles for variant in report.results[role].classification]
    headers = [names[role] + (f" ({variant})" if role == "base" else "") for role, variant in columns]
    reports = [report.results[role].classification[variant] for role, variant in columns]
    found = [report.results[role].extraction[variant] for role, variant in columns]
    total = report.rows
    summary = [["accuracy", *(f"{r.accuracy:.1%}" for r in reports)],
               ["macro-F1", *(f"{r.macro_f1:.3f}" for r in reports)]]
    if all("head" in f for f in found):  # a sequence head: every row gets the label of its highest score
        summary.append(["label", *("highest score of the head" for _ in found)])
    else:
        summary += [["label said exactly", *(f"{f.get('exact', 0) / total:.1%}" for f in found)],
                    ["label found loosely", *(f"{(f.get('normalised', 0) + f.get('mentioned', 0)) / total:.1%}"
                                              for f in found)],
                    ["no label found", *(f"{f.get('none', 0) / total:.1%}" for f in found)]]
    parts: list[Any] = [_Table(["", *headers], summary, f"Classification: {len(report.labels)} labels, "
                                                        f"{total:,} rows")]

    best = {role: report.results[role].best_variant() for role in roles}
    per_class = []
    for label in report.labels:
        cells = [label, str(report.results[roles[0]].classification[best[roles[0]]].per_class[label].support)]
        for role in roles:
            scores = report.results[role].classification[best[role]].per_class[label]
            cells += [f"{scores.precision:.2f}", f"{scores.recall:.2f}", f"{scores.f1:.2f}"]
        per_class.append(cells)
    short = {"base": "base", "fine_tuned": "tuned", **({} if not report.sides else names)}  # eight columns fit in 80
    parts.append(_Table(["label", "rows"] + [f"{short[role]} {m}" for role in roles for m in ("P", "R", "F1")],
                        per_class, "Per class" + (f" (base: prompt {best['base']})" if "base" in best else "")))
    for role in roles:
        matrix = report.results[role].classification[best[role]]
        parts.append(_Table(["true", *matrix.labels, "(none)"],
                            [[label, *map(str, counts)] for label, counts in zip(matrix.labels, matrix.confusion,
                                                                                 strict=True)],
                            f"Confusion matrix, {names[role]} (rows: true label, columns: predicted)"))
    verdict = report.verdict()
    if verdict:
        passed, tuned, base_f1, prompt = verdict
        relation = ">" if passed else "=" if tuned == base_f1 else "<"
        parts.append(f"fine-tuned macro-F1 {tuned:.3f} {relation} the base model's best prompted "
                     f"macro-F1 {base_f1:.3f} (prompt {prompt}): " + (
                         "fine-tuning helped." if passed else "fine-tuning has not beaten prompting the base model"
                         + (" (a tie is not a win)." if tuned == base_f1 else ".")))
    bar = report.bar()
    if bar:
        passed, f1 = bar
        parts.append(f"bar: macro-F1 {f1:.3f} {'>' if passed else '=' if f1 == report.min_f1 else '<'} --min-f1 "
                     f"{report.min_f1:g}: " + ("met." if passed else "not met (a tie does not count)."
                                               if f1 == report.min_f1 else "not met."))
    return parts


def _samples(report: EvalReport, plain: bool) -> list[Any]:
    """Each sample row with the reference and every model's answer: lines when plain, else one wide table."""
    if not report.samples:
        return []
    labels = {"reference": "reference", **{role: report.names[role] for role in report.roles}}
    if plain:
        lines = [f"Samples ({len(report.samples)}, greedy):"]
        for sample in report.samples:
            lines.append(f"--- row {sample['row']}")
            lines.append(f"prompt: {_one_line(_last_user_turn(sample['prompt']))}")
            lines += [f"{name}: {_one_line(sample.get(key) or '')}" for key, name in labels.items()]
        return lines
    from rich.table import Table
    from rich.text import Text

    table = Table(header_style="bold", show_lines=True)
    table.add_column("row", justify="right")
    table.add_column("prompt", ratio=2, overflow="fold")
    for name in labels.values():
        table.add_column(name, ratio=1, overflow="fold")
    for sample in report.samples:
        table.add_row(str(sample["row"]), _clip(_last_user_turn(sample["prompt"])),
                      *(_clip(sample.get(key) or "") for key in labels))
    return [Text(f"Samples ({len(report.samples)}, greedy)", style="bold"), table]


def _lm_eval(report: EvalReport) -> list[Any]:
    roles, compared = report.roles, _compared(report)
    tasks = report.results[roles[-1]].lm_eval
    if not tasks:
        return []
    rows = []
    for task, metrics in tasks.items():
        for metric in metrics:
            values = [report.results[role].lm_eval.get(task, {}).get(metric) for role in roles]
            change = [_percent(report.lm_eval_change(task, metric))] if compared else []
            rows.append([f"{task} {metric}", *(_number(v) if v is not None else "-" for v in values), *change])
    return [_Table(["task metric", *_headers(report)[1:]], rows, "lm-eval-harness (zero-shot)")]


def _forgetting(report: EvalReport) -> list[Any]:
    """Each general benchmark's verdict (kept, worse by x%, forgetting), and the commands that mitigate forgetting."""
    checks = report.forgetting_checks()
    if not checks:
        return []
    rows = [[check["task"] if check["check"] == "lm-eval" else f"general data ({check['task']})", check["metric"],
             _number(check["base"]), _number(check["fine_tuned"]), check["shown"]] for check in checks]
    threshold = report.forgetting_threshold
    parts: list[Any] = [_Table(["benchmark", "metric", "base", "fine-tuned", "verdict"], rows,
                               f"Forgetting: the fine-tuned model against the base (more than {threshold:.0%} worse "
                               "is forgetting)")]
    if report.mitigation:
        parts.append("forgetting found: mix general data into the training data and train again with a lower "
                     "learning rate:")
        parts += [f"  {command}" for command in report.mitigation]
        parts += [f"  ({note})" for note in report.mitigation_notes]
    return parts


def _better(report: EvalReport) -> list[Any]:
    """--against: each metric with A's and B's value and the better side, then one verdict line."""
    found = report.better_by_metric()
    if not found:
        return []
    names = report.names
    rows = [[metric, _number(a), _number(b), better or "tie"] for metric, a, b, better in found]
    by_side: dict[str, list[str]] = {}
    for metric, _, _, better in found:
        by_side.setdefault(better or "tie", []).append(metric)
    said = [f"{side} is better on {', '.join(by_side[side])}" for side in (names["A"], names["B"]) if side in by_side]
    said += [f"tied on {', '.join(by_side['tie'])}"] if "tie" in by_side else []
    return [_Table(["metric", names["A"], names["B"], "better"], rows, "Which side is better"),
            f"verdict: {'; '.join(said)}."]


def _plain_lines(parts: list[Any]) -> list[str]:
    lines = []
    for part in parts:
        if isinstance(part, _Table):
            lines += [part.title] if part.title else []
            lines += ["\t".join(str(cell) for cell in row) for row in [part.headers, *part.rows]]
        else:
            lines.append(part)
    return lines


def _rich_group(parts: list[Any]) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    shown: list[Any] = []
    for part in parts:
        if isinstance(part, _Table):
            if part.title:  # a line of its own: a table's title wraps at the table's width
                shown.append(Text(part.title, style="bold"))
            table = Table(header_style="bold")
            for i, header in enumerate(part.headers):
                table.add_column(header, justify="left" if i == 0 else "right")
            for row in part.rows:
                table.add_row(*(str(cell) for cell in row))
            shown.append(table)
        else:
            shown.append(Text(part) if isinstance(part, str) else part)
    return Group(*shown)


def _last_user_turn(prompt: Sequence[Mapping[str, Any]]) -> str:
    users = [turn for turn in prompt if turn.get("role") == "user"]
    return str((users or list(prompt) or [{}])[-1].get("content") or "")


def _one_line(text: str, limit: int = 300) -> str:
    return _clip(" ".join(text.split()), limit)


def _clip(text: str, limit: int = 400) -> str:
    """At most `limit` characters, control characters (a random model's output has some) shown as \ufffd."""
    text = "".join(ch if ch.isprintable() or ch in "\n\t" else "\ufffd" for ch in text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _number(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}" if abs(value) >= 1 else f"{value:.4f}"


def _percent(change: float | None) -> str:
    return "" if change is None else f"{change:+.1%}"
