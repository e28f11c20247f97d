"""The `lorawiz eval` results of a run in its report: each eval-*.json file's metrics by model, the change from
base to fine-tuned, its verdicts and notes, and the sample answers side by side. Read from the JSON as written
(lorawiz.eval.report.EvalReport.as_dict), tolerating keys it does not know: an older or newer file still shows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lorawiz.views.html import Markup, esc, note, number_text, table

ROLE_NAMES = {"base": "base", "fine_tuned": "fine-tuned"}  # lorawiz.eval.report.ROLE_NAMES
ROLE_ORDER = ("base", "fine_tuned")


def render_evals(evals: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    if not evals:
        return note("No lorawiz eval results in this folder (eval-*.json); run lorawiz eval on it to add them.")
    return "".join(_one_eval(name, found) for name, found in evals)


def _one_eval(name: str, found: Mapping[str, Any]) -> str:
    parts = [f"<h4>{esc(name)}</h4>", f'<p class="meta">{esc(_about(found))}</p>']
    results = found.get("results") if isinstance(found.get("results"), Mapping) else {}
    roles = sorted(results, key=lambda role: (ROLE_ORDER.index(role) if role in ROLE_ORDER else len(ROLE_ORDER),
                                              role))
    metrics = {role: eval_metrics(results[role]) for role in roles if isinstance(results[role], Mapping)}
    names = list(dict.fromkeys(name for role in metrics for name in metrics[role]))
    if names:
        compare = all(role in metrics for role in ROLE_ORDER)
        headers = ["metric", *(ROLE_NAMES.get(role, role) for role in metrics)] + (["change"] if compare else [])
        rows = []
        for metric in names:
            row: list[Any] = [metric, *(metrics[role].get(metric) for role in metrics)]
            if compare:
                row.append(_change(metrics["base"].get(metric), metrics["fine_tuned"].get(metric)))
            rows.append(row)
        parts.append(table(headers, rows, "metrics"))
    else:
        parts.append(note("This file holds no metrics."))
    parts += [f"<p>{esc(line)}</p>" for line in verdicts(found)]
    parts += [note(str(text)) for text in found.get("notes") or [] if text]
    samples = [s for s in found.get("samples") or [] if isinstance(s, Mapping)]
    if samples:
        parts.append(f"<h5>Generations ({len(samples)} rows, greedy)</h5>")
        parts.append(_samples(samples))
    return f'<div class="eval">{"".join(parts)}</div>'


def _about(found: Mapping[str, Any]) -> str:
    bits = [f"data {found.get('data', '?')}"]
    if found.get("rows") is not None:
        total = found.get("rows_in_file")
        bits.append(f"{found['rows']} rows" + (f" of {total}" if total not in (None, found["rows"]) else ""))
    if found.get("task"):
        bits.append(f"task {found['task']}" + (f" ({found['task_source']})" if found.get("task_source") else ""))
    if found.get("target"):
        bits.append(f"target {found['target']}")
    if found.get("base"):
        bits.append(f"base {found['base']}")
    if isinstance(found.get("seconds"), int | float):
        bits.append(f"{found['seconds']:.0f} s")
    return ", ".join(bits)


def eval_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """One model's numbers by display name: loss and perplexity, general-data perplexity, accuracy and macro-F1 per
    prompt variant, preference scores, lm-eval tasks, and any other number at the top level."""
    out: dict[str, float] = {}
    for key, value in result.items():
        if key in ("loss", "general") and isinstance(value, Mapping):
            prefix = "general " if key == "general" else ""
            for name, shown in (("loss", "loss"), ("perplexity", "perplexity"), ("tokens", "tokens scored")):
                if _is_number(value.get(name)):
                    out[f"{prefix}{shown}"] = value[name]
        elif key == "classification" and isinstance(value, Mapping):
            for variant, report in value.items():
                if isinstance(report, Mapping):
                    for name, shown in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")):
                        if _is_number(report.get(name)):
                            out[f"{shown} ({variant})"] = report[name]
        elif key == "preference" and isinstance(value, Mapping):
            for name, number in value.items():
                shown = name.replace("_", " ")
                if _is_number(number):
                    out[shown if shown.startswith("preference") else f"preference {shown}"] = number
        elif key == "lm_eval" and isinstance(value, Mapping):
            for task, scores in value.items():
                for name, number in (scores.items() if isinstance(scores, Mapping) else ()):
                    if _is_number(number):
                        out[f"{task} {name}"] = number
        elif _is_number(value):
            out[key.replace("_", " ")] = value
    return out


def verdicts(found: Mapping[str, Any]) -> list[str]:
    """The file's yes/no findings as sentences: fine-tuned against the base's best prompt, the --min-f1 bar,
    forgetting, DPO's reward over the base."""
    lines = []
    beats = found.get("fine_tuned_beats_base")
    if isinstance(beats, Mapping):
        lines.append(f"Fine-tuned macro-F1 {number_text(beats.get('fine_tuned_macro_f1'))} against the base's best "
                     f"prompt ({beats.get('base_best_prompt', '?')}) "
                     f"{number_text(beats.get('base_best_macro_f1'))}: "
                     + ("fine-tuning helped." if beats.get("passed") else "fine-tuning did not beat it."))
    bar = found.get("min_f1")
    if isinstance(bar, Mapping):
        lines.append(f"Bar: macro-F1 {number_text(bar.get('macro_f1'))} against {number_text(bar.get('bar'))}: "
                     + ("passed." if bar.get("passed") else "not met."))
    if found.get("forgetting_warning"):
        change = (found.get("change") or {}).get("general_perplexity")
        rise = f"{change:+.1%}" if _is_number(change) else "more than the threshold"
        lines.append(f"Forgetting: the general-data perplexity rose by {rise} ({found.get('general_data', '?')}).")
    rewards = found.get("rewards")
    if isinstance(rewards, Mapping):
        lines.append(f"Implicit reward over the base: accuracy {number_text(rewards.get('reward_accuracy'))}, "
                     f"margin {number_text(rewards.get('reward_margin'))}.")
    for role, result in (found.get("results") or {}).items():
        if isinstance(result, Mapping) and result.get("best_prompt"):
            lines.append(f"{ROLE_NAMES.get(role, role)}: best prompt {result['best_prompt']}.")
    return lines


def _samples(samples: Sequence[Mapping[str, Any]]) -> str:
    roles = list(dict.fromkeys(key for sample in samples for key in sample
                               if key not in ("row", "prompt", "reference")))
    headers = ["row", "prompt", "reference", *(ROLE_NAMES.get(role, role) for role in roles)]
    rows = [[sample.get("row"), Markup(_prompt(sample.get("prompt"))), Markup(_answer(sample.get("reference"))),
             *(Markup(_answer(sample.get(role))) for role in roles)] for sample in samples]
    return table(headers, rows, "samples")


def _prompt(prompt: Any) -> str:
    """A chat prompt as its turns (a long system prompt folded away), or a plain prompt as text."""
    if not isinstance(prompt, list):
        return _answer(prompt)
    turns = []
    for turn in prompt:
        if not isinstance(turn, Mapping):
            continue
        role, content = str(turn.get("role", "?")), turn.get("content", "")
        text = f'<span class="role">{esc(role)}</span> <span class="text">{esc(content)}</span>'
        turns.append(f"<details><summary>{esc(role)}</summary>{esc(content)}</details>" if role == "system"
                     else f'<div class="turn">{text}</div>')
    return "".join(turns)


def _answer(text: Any) -> str:
    return '<span class="none">-</span>' if text is None else f'<span class="text">{esc(text)}</span>'


def _change(before: Any, after: Any) -> str:
    if not (_is_number(before) and _is_number(after)) or before == 0:
        return ""
    return f"{(after - before) / abs(before):+.1%}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
