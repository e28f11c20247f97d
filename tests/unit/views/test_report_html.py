"""`lorawiz report`'s page as a pure function of the runs read: the curves drawn for what each run logged (several
runs on the same axes), a note for what it did not, the plan and config, eval results and generations, every text
from a run escaped, and nothing that a browser would fetch."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from lorawiz.run_history import RunHistory
from lorawiz.views.report_eval import eval_metrics
from lorawiz.views.report_figures import svg_text
from lorawiz.views.report_html import render_report_html

LOSS = [(1, 2.0), (2, 1.6), (3, 1.3), (4, 1.1)]
EVAL = [(2, 1.5), (4, 1.2)]
CONFIG = """# lorawiz 0.1.0: the resolved configuration of this run (secrets redacted).
model:
  model_name_or_path: builtin:tiny  # flag --model
lora:
  lora_r: 16  # recommender: 900 rows: rank 16
training:
  learning_rate: 0.0002  # default
"""
EVAL_FILE = {
    "target": "run-a", "data": "val.jsonl", "rows": 8, "rows_in_file": 8, "task": "classification",
    "task_source": "the run's task",
    "results": {"base": {"loss": {"loss": 7.6, "perplexity": 2000.0, "tokens": 16},
                         "classification": {"as given": {"accuracy": 0.125, "macro_f1": 0.05}}},
                "fine_tuned": {"loss": {"loss": 0.4, "perplexity": 1.49, "tokens": 16},
                               "classification": {"as given": {"accuracy": 1.0, "macro_f1": 1.0}}}},
    "fine_tuned_beats_base": {"passed": True, "fine_tuned_macro_f1": 1.0, "base_best_macro_f1": 0.05,
                              "base_best_prompt": "label list"},
    "samples": [{"row": 1, "prompt": [{"role": "system", "content": "Classify."},
                                      {"role": "user", "content": "Smoke & <flames> on 5th"}],
                 "reference": "fire", "base": "<b>bold</b>\x06 guess", "fine_tuned": "fire"}],
    "notes": ["2 rows were truncated"],
}


def run(name: str, **series) -> RunHistory:
    found = RunHistory(name, Path("outputs") / name, series=series, source="metrics.jsonl")
    if "memory_gib" in series:
        found.memory_kind = "process RSS"
    return found


def full_run(name: str = "run-a") -> RunHistory:
    from lorawiz.run_history import parse_run_config

    found = run(name, loss=LOSS, eval_loss=EVAL, learning_rate=[(1, 1e-4), (4, 2e-4)], grad_norm=[(1, 2.1), (4, 1.9)],
                tokens_per_s=[(1, 900.0), (4, 1200.0)], memory_gib=[(1, 0.6), (4, 0.7)])
    found.config_text = CONFIG
    found.config, found.sources = parse_run_config(CONFIG)
    found.info = {"command": ["train", "--model", "builtin:tiny"], "finished": {"global_step": 4}}
    found.results = {"global_step": 4, "final_loss": 1.1, "eval_loss": 1.2, "train_runtime": 65.0}
    found.evals = [("eval-val-20260101-000000.json", EVAL_FILE)]
    return found


def page(*runs: RunHistory) -> str:
    return render_report_html(list(runs), generated="2026-01-01 00:00 UTC", version="0.1.0")


def figures(html: str) -> dict[str, str]:
    return dict(re.findall(r'<figure id="figure-([\w-]+)">(.*?)</figure>', html, re.DOTALL))


class Checker(HTMLParser):
    """Collects the tags a browser would fetch something for, and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.fetching: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "srcset", "action") and value and not value.startswith("#"):
                self.fetching.append(f"<{tag} {name}={value}>")
        if tag in ("script", "iframe", "link", "object", "embed"):
            self.fetching.append(f"<{tag}>")

    def handle_data(self, data):
        self.text.append(data)


def test_every_logged_series_is_drawn_with_the_run_in_its_legend():
    html = page(full_run())
    shown = figures(html)
    assert set(shown) == {"loss", "learning_rate", "grad_norm", "tokens_per_s", "memory_gib"}
    assert "train loss" in shown["loss"] and "eval loss" in shown["loss"]  # the svg keeps its text as text
    assert all("run-a" in shown[key] for key in ("learning_rate", "grad_norm", "tokens_per_s", "memory_gib"))
    assert "process RSS" in shown["memory_gib"]
    assert "logged no" not in html


def test_two_runs_share_the_axes_and_their_differences_are_listed():
    other = full_run("run-b")
    other.config = {**other.config, "lora_r": 64}
    html = page(full_run(), other)
    shown = figures(html)
    assert len(shown) == 5  # one figure per metric, not one per run
    for key in ("loss", "learning_rate", "grad_norm"):
        assert "run-a" in shown[key] and "run-b" in shown[key], key
    assert "run-a: train loss" in shown["loss"] and "run-b: eval loss" in shown["loss"]
    diff = re.search(r'<section id="differences">.*?</section>', html, re.DOTALL).group()
    assert "<td>lora_r</td><td>16</td><td>64</td>" in diff and "model_name_or_path" not in diff


def test_a_series_a_run_did_not_log_is_left_out_with_a_note():
    html = page(run("lonely", loss=LOSS))
    assert set(figures(html)) == {"loss"}
    for what in ("evaluation loss", "learning rate", "gradient norm", "tokens per second", "memory"):
        note = rf'<p class="note">This run logged no {what}\b[^<]*; that figure is left out\.</p>'
        assert re.search(note, html), what
    both = page(full_run(), run("bare", loss=LOSS))
    assert '<p class="note">bare logged no gradient norm.</p>' in both
    assert "grad_norm" in figures(both)


def test_a_run_with_nothing_logged_renders_without_figures():
    html = page(run("empty"))
    assert figures(html) == {} and "No lorawiz eval results in this folder" in html
    assert "No lorawiz.yaml with sources in this folder" in html


def test_plan_config_eval_results_and_generations_are_shown():
    html = page(full_run())
    assert "<td>lora_r</td><td>16</td><td>recommender: 900 rows: rank 16</td>" in html  # the plan's reason
    assert "learning_rate</td>" not in html.split("Plan:")[1].split("</table>")[0]  # a default is not a choice
    assert "lorawiz.yaml (the resolved configuration" in html and "# lorawiz 0.1.0: the resolved" in html
    assert '<pre class="command">lorawiz train --model builtin:tiny</pre>' in html
    assert "<h4>eval-val-20260101-000000.json</h4>" in html
    assert "<td>accuracy (as given)</td><td>0.1250</td><td>1.0000</td><td>+700.0%</td>" in html
    assert "fine-tuning helped." in html and "2 rows were truncated" in html
    assert "Generations (1 rows, greedy)" in html and '<span class="text">fire</span>' in html


def test_text_from_a_run_is_escaped():
    found = full_run('<script>alert("x")</script>')
    found.config_text = CONFIG + "  system_prompt: </pre><img src=x>  # flag --system\n"
    html = page(found)
    assert "<script>alert" not in html and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "<img src=x>" not in html and "&lt;/pre&gt;&lt;img src=x&gt;" in html
    assert "Smoke &amp; &lt;flames&gt; on 5th" in html
    assert "&lt;b&gt;bold&lt;/b&gt;\ufffd guess" in html  # a control character is not valid HTML
    assert "\x06" not in html
    checker = Checker()
    checker.feed(html)
    assert any('<script>alert("x")</script>' in text for text in checker.text)  # shown as the text it is


def test_the_page_fetches_nothing_when_opened():
    html = page(full_run(), full_run("run-b"))
    checker = Checker()
    checker.feed(html)
    assert checker.fetching == []
    assert not re.search(r"url\(\s*['\"]?(?:https?:)?//|@import", html)
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")


def test_the_svg_ids_of_two_figures_never_collide():
    html = page(full_run(), full_run("run-b"))
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    references = set(re.findall(r'(?:href="#|url\(#)([^")]+)', html))
    assert references <= set(ids)


def test_svg_text_is_the_same_for_the_same_figure():
    from lorawiz.views.report_figures import metric_figure

    def draw() -> str:
        return svg_text(metric_figure([("a", LOSS)], "loss", "t"), "f-x")

    first = draw()
    assert first.startswith("<svg") and first == draw()


def test_eval_metrics_reads_every_kind_of_result_and_skips_what_it_does_not_know():
    found = eval_metrics({"loss": {"loss": 1.0, "perplexity": 2.7, "tokens": 5},
                          "general": {"perplexity": 9.0}, "classification": {"label list": {"accuracy": 0.5}},
                          "preference": {"pairs": 4, "preference_accuracy": 0.75}, "lm_eval": {"arc": {"acc": 0.3}},
                          "best_prompt": "label list", "speed": 3.5, "future": {"nested": [1]}})
    assert found == {"loss": 1.0, "perplexity": 2.7, "tokens scored": 5, "general perplexity": 9.0,
                     "accuracy (label list)": 0.5, "preference pairs": 4, "preference accuracy": 0.75,
                     "arc acc": 0.3, "speed": 3.5}


def test_a_long_series_is_thinned_to_at_most_the_points_a_figure_draws():
    from lorawiz.views.report_figures import MAX_POINTS, thinned

    points = [(step, 1.0 / step) for step in range(1, 20_002)]
    kept = thinned(points)
    assert len(kept) <= MAX_POINTS + 1 and kept[0] == points[0] and kept[-1] == points[-1]
    assert thinned(points[:10]) == points[:10]
