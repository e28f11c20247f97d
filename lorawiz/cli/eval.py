"""`lorawiz eval`: the base model and the fine-tuned one, side by side, on your data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lorawiz.cli._funnel import funnel


@funnel
def eval_command(
    target: Annotated[str, typer.Argument(metavar="TARGET", help="An adapter folder (lorawiz train's output or a "
                                          "checkpoint-N in it), a merged model or a hub id.")],
    data: Annotated[str, typer.Option("--data", metavar="PATH", help="Evaluation data: any shape lorawiz format "
                                      "reads, a hub dataset id or builtin:triage:validation. Use held-out rows.")],
    against: Annotated[str | None, typer.Option("--against", metavar="RUN_B", help="Compare TARGET (A) with this "
                                                "adapter folder or merged model (B) on the same rows, instead of "
                                                "with its base; two adapters of one base share it in memory.",
                                                show_default=False)] = None,
    base: Annotated[str | None, typer.Option("--base", metavar="MODEL", help="The base model [default: the one "
                                             "in adapter_config.json; needed to compare a merged model].")] = None,
    compare_base: Annotated[bool | None, typer.Option("--compare-base/--no-compare-base", help="Measure the base "
                                                      "model too [default: when it is known].",
                                                      show_default=False)] = None,
    task: Annotated[str | None, typer.Option("--task", metavar="lm|classification", help="lm: loss, perplexity "
                                             "and sample answers; classification: also label accuracy and F1 "
                                             "[default: the run's task, or classification when the answers are "
                                             "a few labels].", show_default=False,
                                             autocompletion=lambda: ["lm", "classification"])] = None,
    labels: Annotated[str | None, typer.Option("--labels", metavar="a,b,c", help="The label set for "
                                               "classification [default: the answers in the data].")] = None,
    general_data: Annotated[str | None, typer.Option("--general-data", metavar="PATH", help="General text to "
                                                     "check for forgetting: perplexity before and after.")] = None,
    max_samples: Annotated[int | None, typer.Option("--max-samples", metavar="N", help="Evaluate at most N rows "
                                                    "(a fixed sample) of each data file.")] = None,
    samples: Annotated[int, typer.Option("--samples", metavar="K", help="Rows shown with each model's answer "
                                         "side by side.")] = 3,
    lm_eval: Annotated[str | None, typer.Option("--lm-eval", metavar="TASKS", help="lm-eval-harness tasks, "
                                                "comma-separated names or task YAML files (needs "
                                                "lorawiz[eval]).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", metavar="OUT", help="Where to write the results as "
                                                  "JSON [default: eval-DATA-TIME.json in TARGET's folder, or "
                                                  "here].", show_default=False)] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Longest sample answer in tokens.")] = 256,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Rows answered at once (and lm-eval's batch "
                                            "size).")] = 8,
    prompt_template: Annotated[Path | None, typer.Option("--prompt-template", metavar="FILE", help="Your best "
                                                         "prompt for the base model, a text file with {input} (each "
                                                         "row's prompt) and optionally {labels}: the base is also "
                                                         "asked with it, and the fine-tuned model must beat its "
                                                         "best prompt.", show_default=False)] = None,
    min_f1: Annotated[float | None, typer.Option("--min-f1", metavar="F1", help="A fixed bar: the fine-tuned "
                                                 "macro-F1 must beat it (a tie does not); exit 3 when it does not.",
                                                 show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --json file.")] = False,
) -> None:
    """Measure whether fine-tuning helped: base and fine-tuned model side by side, on the same rows.

    Loss and perplexity on the assistant's answers; K answers side by side; for classification data,
    accuracy, macro-F1, per-class precision / recall / F1 and confusion matrices (the base is also
    prompted with the label list, and its best prompt is the bar to beat); with --general-data, a
    forgetting check that warns when general perplexity worsens by more than 5%; each general
    benchmark (--general-data, --lm-eval) gets a verdict (kept, worse by x%, forgetting), and on
    forgetting the mix-and-retrain commands are printed. On preference pairs (chosen/rejected),
    each model's preference accuracy and DPO's implicit reward instead. With --against RUN_B, two
    fine-tuned models side by side (A and B), and which is better on each metric.

    \b
    Examples:
      lorawiz eval outputs/my-run --data val.jsonl
      lorawiz eval outputs/my-run --data val.jsonl --task classification --labels fire,flood,medical
      lorawiz eval outputs/my-run --data val.jsonl --prompt-template best_prompt.txt --min-f1 0.615
      lorawiz eval merged/my-model --base Qwen/Qwen3-4B --data val.jsonl --general-data wiki.jsonl --json res.json
      lorawiz eval outputs/my-dpo-run --data pairs-val.jsonl     # preference accuracy, base vs tuned
      lorawiz eval outputs/run-r16 --against outputs/run-r64 --data val.jsonl --general-data wiki.jsonl
    """
    import json
    import time

    from lorawiz.console import get_console, is_plain, say
    from lorawiz.data.writers import atomic_output, check_writable
    from lorawiz.errors import LorawizError
    from lorawiz.eval.run import EvalRequest, run_eval
    from lorawiz.libraries import hide_optional_kernel_warning, quiet_libraries
    from lorawiz.views.eval import render_report

    hide_optional_kernel_warning()
    quiet_libraries(plain=is_plain())

    label_list = _split_list(labels, "--labels")
    task_list = _split_list(lm_eval, "--lm-eval")
    out = json_out or _default_json_path(target, data)
    check_writable(out, overwrite, flag="--overwrite", inputs=[data, general_data])  # before minutes of work
    if label_list is not None and len(label_list) < 2:
        raise LorawizError(f"--labels {labels}: give at least two labels.", hint="For example --labels yes,no.")
    template = _read_template(prompt_template) if prompt_template else None
    request = EvalRequest(target, data, base=base, compare_base=compare_base, task=task, labels=label_list,
                          general_data=general_data, max_samples=max_samples, samples=samples, lm_eval=task_list,
                          max_new_tokens=max_new_tokens, batch_size=batch_size, prompt_template=template,
                          min_f1=min_f1, against=against)
    started = time.monotonic()
    try:
        report = run_eval(request, progress=lambda text: say(f"... {text}", stderr=True))
    except KeyboardInterrupt:
        say("interrupted: no results were written.", stderr=True)
        raise typer.Exit(130) from None
    plain = is_plain()
    shown = render_report(report, plain)
    if plain:
        for line in shown:
            say(line)
    else:
        get_console().print(shown)
    with atomic_output(out, overwrite) as handle:
        json.dump(report.as_dict() | {"seconds": round(time.monotonic() - started, 1)}, handle, indent=2)
        handle.write("\n")
    say(f"wrote {out}")
    bar = report.bar()
    if bar is not None and not bar[0]:
        raise typer.Exit(BAR_NOT_MET)


BAR_NOT_MET = 3


def _read_template(path: Path) -> str:
    from lorawiz.errors import LorawizError

    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LorawizError(f"--prompt-template {path}: cannot be read ({exc}).",
                           hint="Give a UTF-8 text file with {input} where each row's prompt goes.") from exc


def _split_list(value: str | None, flag: str) -> list[str] | None:
    from lorawiz.errors import LorawizError

    if value is None:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise LorawizError(f"{flag} {value!r}: empty.", hint=f"Give a comma-separated list, e.g. {flag} a,b,c.")
    return items


def _default_json_path(target: str, data: str) -> Path:
    import os
    import re
    import time

    stem = re.sub(r"[^\w.-]+", "-", Path(data.removeprefix("builtin:").replace(":", "-")).stem).strip("-") or "data"
    name = f"eval-{stem}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    folder = Path(target).expanduser()
    return folder / name if folder.is_dir() and os.access(folder, os.W_OK) else Path(name)
