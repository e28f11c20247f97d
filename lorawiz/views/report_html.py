"""`lorawiz report`'s page: one self-contained HTML document (inline CSS and SVG, nothing fetched when it opens)
with the runs side by side, their curves over steps on shared axes, what each run planned and ran with, and its
`lorawiz eval` results. A pure function of the runs read (lorawiz.run_history.RunHistory); every text from a run
is escaped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lorawiz.config.schema import format_value
from lorawiz.views.dashboard import format_duration
from lorawiz.views.html import Markup, esc, note, table
from lorawiz.views.report_eval import render_evals
from lorawiz.views.report_figures import colour, loss_figure, metric_figure, svg_text

if TYPE_CHECKING:
    from lorawiz.run_history import RunHistory

# (series, what it is in a sentence, axis label): the curves after the loss, in this order.
CURVES = (
    ("learning_rate", "learning rate", "learning rate"),
    ("grad_norm", "gradient norm", "gradient norm (before clipping)"),
    ("tokens_per_s", "tokens per second", "tokens/s"),
    ("memory_gib", "memory", "GiB"),
)
NOT_COMPARED = {"output_dir", "logging_dir", "run_name"}  # differ between any two runs: not worth a row
CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1100px;
       padding: 0 20px 40px; color: #1d1d1f; background: #fff; }
h1 { font-size: 24px; margin: 24px 0 4px; } h2 { font-size: 19px; margin-top: 32px; border-bottom: 1px solid #ddd; }
h3 { font-size: 16px; margin-top: 22px; } h4 { font-size: 14px; margin: 16px 0 4px; } h5 { margin: 12px 0 4px; }
.meta, .note { color: #555; } .note { font-style: italic; }
nav a { margin-right: 14px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f6; } td { font-variant-numeric: tabular-nums; }
table.samples td { max-width: 320px; white-space: pre-wrap; word-break: break-word; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
figure { margin: 12px 0; } figure svg { max-width: 100%; height: auto; }
pre { background: #f7f7f9; border: 1px solid #e3e3e8; padding: 8px; overflow-x: auto; font-size: 12px; }
pre.command { white-space: pre-wrap; word-break: break-all; }
.role { font-weight: 600; } .turn { margin-bottom: 4px; } details summary { cursor: pointer; color: #555; }
"""


def render_report_html(runs: Sequence[RunHistory], generated: str, version: str,
                       first_line: str = "<!DOCTYPE html>") -> str:
    """The whole page. `generated`: when, as shown; `first_line`: the doctype line, which may carry the comment
    that marks the file as lorawiz's (lorawiz.ownership.REPORT_HEADER)."""
    names = ", ".join(run.name for run in runs)
    sections = [_summary(runs), _curves(runs)]
    if len(runs) > 1:
        sections.append(_differences(runs))
    sections += [_run_section(index, run) for index, run in enumerate(runs)]
    links = ['<a href="#runs">runs</a>', '<a href="#curves">curves</a>']
    if len(runs) > 1:
        links.append('<a href="#differences">differences</a>')
    links += [f'<a href="#run-{index}">{esc(run.name)}</a>' for index, run in enumerate(runs)]
    return "\n".join([
        first_line, '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta name="generator" content="lorawiz {esc(version)}">',
        f"<title>lorawiz report: {esc(names)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
        "<header><h1>Training report</h1>",
        f'<p class="meta">{esc(names)} - generated {esc(generated)} by lorawiz {esc(version)}</p>',
        f'<nav>{"".join(links)}</nav></header>', *sections, "</body>", "</html>", ""])


def _summary(runs: Sequence[RunHistory]) -> str:
    rows = []
    for index, run in enumerate(runs):
        results, config = run.results, run.config
        rows.append([Markup(f'<span class="swatch" style="background:{_css_colour(index)}"></span>'
                            f'<a href="#run-{index}">{esc(run.name)}</a>'),
                     str(run.path), config.get("model_name_or_path"), config.get("method"), _steps(run),
                     results.get("final_loss", _last(run, "loss")), results.get("eval_loss", _last(run, "eval_loss")),
                     format_duration(results["train_runtime"]) if _number(results.get("train_runtime")) else None,
                     results.get("num_input_tokens_seen"), _status(run)])
    headers = ["run", "folder", "model", "method", "steps", "final train loss", "eval loss (kept model)",
               "train time", "tokens seen", "status"]
    return f'<section id="runs"><h2>Runs</h2>{table(headers, rows, "summary")}</section>'


def _steps(run: RunHistory) -> Any:
    finished = run.info.get("finished") if isinstance(run.info.get("finished"), Mapping) else {}
    step = run.results.get("global_step", finished.get("global_step"))
    if step is None:
        step = max((points[-1][0] for points in run.series.values() if points), default=None)
    return step


def _status(run: RunHistory) -> str:
    if run.info.get("finished") or run.results:
        return "finished"
    if run.series:
        return "no final results (stopped, failed or still training)"
    return "nothing logged yet"


def _curves(runs: Sequence[RunHistory]) -> str:
    parts = ['<section id="curves"><h2>Curves over steps</h2>']
    sources = sorted({run.source for run in runs if run.source})
    if sources:
        parts.append(f'<p class="meta">Read from {esc(", ".join(sources))}; memory from training.log.</p>')
    has_loss = [run for run in runs if run.series.get("loss") or run.series.get("eval_loss")]
    if has_loss:
        metrics = sorted({run.eval_metric for run in runs if run.series.get("eval_loss")})
        eval_label = metrics[0].replace("_", " ") if len(metrics) == 1 else "eval loss"
        figure = loss_figure([(run.name, run.series) for run in runs], "training and evaluation loss", eval_label)
        parts.append(_figure("loss", figure))
    parts += _missing(runs, "loss", "training loss")
    parts += _missing(runs, "eval_loss", "evaluation loss (no validation data, or evaluation turned off)")
    for key, what, axis in CURVES:
        logged = [run for run in runs if run.series.get(key)]
        if logged:
            title = what
            if key == "memory_gib":
                kinds = sorted({run.memory_kind for run in logged if run.memory_kind})
                title = f"memory ({', '.join(kinds)}, as training.log shows it)"
            figure = metric_figure([(_legend(run, key, runs), run.series.get(key, [])) for run in runs], axis, title)
            parts.append(_figure(key, figure))
        parts += _missing(runs, key, what)
    parts.append("</section>")
    return "".join(parts)


def _legend(run: RunHistory, key: str, runs: Sequence[RunHistory]) -> str:
    kinds = {other.memory_kind for other in runs if other.series.get("memory_gib")}
    return f"{run.name} ({run.memory_kind})" if key == "memory_gib" and len(kinds) > 1 else run.name


def _missing(runs: Sequence[RunHistory], key: str, what: str) -> list[str]:
    """One short note for a series some or all runs did not log (never an error: the figure is just left out)."""
    without = [run.name for run in runs if not run.series.get(key)]
    if not without:
        return []
    if len(without) == len(runs):
        whom = "This run" if len(runs) == 1 else "No run"
        verb = "logged no" if len(runs) == 1 else "logged any"
        return [note(f"{whom} {verb} {what}; that figure is left out.")]
    return [note(f"{', '.join(without)} logged no {what}.")]


def _figure(key: str, figure: Any) -> str:
    return f'<figure id="figure-{esc(key)}">{svg_text(figure, f"f-{key}")}</figure>'


def _differences(runs: Sequence[RunHistory]) -> str:
    names = list(dict.fromkeys(name for run in runs for name in run.config if name not in NOT_COMPARED))
    rows = [[name, *(format_value(run.config[name]) if name in run.config else "(not set)" for run in runs)]
            for name in names if len({repr(run.config.get(name, "(not set)")) for run in runs}) > 1]
    body = (table(["setting", *(run.name for run in runs)], rows, "differences") if rows
            else note("The runs' configurations are the same (apart from their folders)."))
    if any(not run.config for run in runs):
        body += note(", ".join(run.name for run in runs if not run.config) + " has no lorawiz.yaml to compare.")
    return f'<section id="differences"><h2>Settings that differ</h2>{body}</section>'


def _run_section(index: int, run: RunHistory) -> str:
    parts = [f'<section id="run-{index}"><h2><span class="swatch" style="background:{_css_colour(index)}"></span>'
             f"{esc(run.name)}</h2>", f'<p class="meta">{esc(run.path)}</p>']
    parts += [note(text) for text in run.notes]
    command = run.info.get("command")
    if isinstance(command, list) and command:
        shown = esc(_shell(["lorawiz", *map(str, command)]))
        parts.append(f'<h3>Command</h3><pre class="command">{shown}</pre>')
    parts.append("<h3>Plan: the values this run chose, and why</h3>")
    if run.sources:
        rows = [[name, format_value(run.config.get(name)), source] for name, source in run.sources.items()
                if not source.startswith("default")]
        parts.append(table(["setting", "value", "source"], rows, "plan") if rows
                     else note("Every value is the default."))
    else:
        parts.append(note("No lorawiz.yaml with sources in this folder: the plan is not known."))
    if run.config_text is not None:
        parts.append("<details><summary>lorawiz.yaml (the resolved configuration, re-runnable with lorawiz train)"
                     f"</summary><pre>{esc(run.config_text)}</pre></details>")
    if run.results:
        rows = [[key, value if isinstance(value, int | float) else format_value(value)]
                for key, value in run.results.items()]
        parts.append(f"<details><summary>all_results.json</summary>{table(['result', 'value'], rows)}</details>")
    parts.append("<h3>Evaluations</h3>")
    parts.append(render_evals(run.evals))
    parts.append("</section>")
    return "".join(parts)


def _shell(argv: Sequence[str]) -> str:
    import shlex

    return shlex.join(argv)


def _css_colour(index: int) -> str:
    from matplotlib.colors import to_hex

    return to_hex(colour(index))


def _last(run: RunHistory, key: str) -> float | None:
    points = run.series.get(key)
    return points[-1][1] if points else None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
