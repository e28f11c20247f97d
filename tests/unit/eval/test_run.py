"""lorawiz.eval's choices that need no model (plan and measure): the task, the label list prompt, the rows
sampled."""

from __future__ import annotations

import pytest

from lorawiz.config.resolve import resolve_config
from lorawiz.eval.measure import _with_label_list, _without_reasoning
from lorawiz.eval.plan import EvalRequest, _answers, _resolve_task, _sample_indices
from lorawiz.eval.plan import sample_positions as _sample_positions

CLASSIFICATION_RUN = resolve_config(set_items=["task=classification"]).config  # a run's lorawiz.yaml, typed


def chat(answer: str, question: str = "What happened?") -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def test_task_comes_from_the_flag_the_run_or_the_answers():
    labelled = [chat(label) for label in ["fire", "flood", "medical"] * 10]
    prose = [chat(f"A long answer number {i} that explains what to do next.") for i in range(30)]
    request = EvalRequest("t", "d")
    labelled, prose = _answers(labelled), _answers(prose)  # the answers summarised as the file streams by
    assert _resolve_task(request, None, labelled) == ("classification", "the data's answers take 3 values")
    assert _resolve_task(request, None, prose) == ("lm", "default")
    assert _resolve_task(request, CLASSIFICATION_RUN, prose)[0] == "classification"
    assert _resolve_task(EvalRequest("t", "d", task="lm"), None, labelled) == ("lm", "--task")
    assert _resolve_task(EvalRequest("t", "d", labels=["a", "b"]), None, prose) == ("classification", "--labels")
    # too few rows per distinct answer is not a label set, nor a row without an answer, nor long answers
    assert _resolve_task(request, None, _answers([chat(str(i)) for i in range(6)]))[0] == "lm"
    unanswered = [*[chat(label) for label in ["fire", "flood"] * 10], {"messages": [{"role": "user", "content": "?"}]}]
    assert _resolve_task(request, None, _answers(unanswered))[0] == "lm"
    assert _resolve_task(request, None, _answers([chat("one two three four five six")] * 30))[0] == "lm"


def test_label_list_goes_into_the_last_user_turn():
    prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Smoke upstairs."}]
    asked = _with_label_list(prompt, ["fire", "flood"])
    assert asked[0] == prompt[0] and prompt[1]["content"] == "Smoke upstairs."  # the input is not modified
    assert asked[1]["content"] == ("Smoke upstairs.\n\nAnswer with exactly one of these labels and nothing else: "
                                   "fire, flood.")


@pytest.mark.parametrize(("answer", "kept"), [
    ("<think>fire or flood? water, so flood</think>\n\nflood", "flood"),
    ("<think>never finished fire", ""),
    ("fire", "fire"),
])
def test_reasoning_is_removed_before_the_label_is_read(answer, kept):
    assert _without_reasoning(answer) == kept


def test_samples_are_fixed_and_spread():
    assert _sample_positions(100, 10) == _sample_positions(100, 10)  # the same rows on every run
    assert _sample_positions(100, 10) == sorted(set(_sample_positions(100, 10)))  # file order, no repeats
    assert len(_sample_positions(100, 10)) == 10 and _sample_positions(100, 500) is None
    assert _sample_indices(240, 3) == [0, 120, 239]
    assert _sample_indices(2, 5) == [0, 1]
    assert _sample_indices(10, 0) == []


def _report(tuned_f1: float, base_f1: float, min_f1=None):
    from types import SimpleNamespace

    from lorawiz.eval.report import AS_GIVEN, EvalReport, ModelResult

    def result(f1):
        return ModelResult(classification={AS_GIVEN: SimpleNamespace(macro_f1=f1)}, extraction={AS_GIVEN: {}})

    return EvalReport(None, "base", "d", 10, 10, "classification", "flag", ["a", "b"],
                      {"base": result(base_f1), "fine_tuned": result(tuned_f1)}, [], min_f1=min_f1)


@pytest.mark.parametrize(("tuned", "base", "helped"), [(0.7, 0.615, True), (0.615, 0.615, False), (0.5, 0.6, False)])
def test_a_tie_with_the_base_is_not_fine_tuning_helped(tuned, base, helped):
    assert _report(tuned, base).verdict()[0] is helped


@pytest.mark.parametrize(("tuned", "passed"), [(0.62, True), (0.615, False), (0.6, False)])
def test_min_f1_is_a_bar_to_beat(tuned, passed):
    report = _report(tuned, 0.1, min_f1=0.615)
    assert report.bar() == (passed, tuned)
    assert _report(tuned, 0.1).bar() is None  # no bar given


def test_the_template_takes_the_rows_prompt_and_the_labels():
    from lorawiz.eval.measure import _with_template

    asked = _with_template([{"role": "system", "content": "s"}, {"role": "user", "content": "smoke on floor 2"}],
                           "One of {labels}: {input}", ["fire", "flood"])
    assert asked[-1] == {"role": "user", "content": "One of fire, flood: smoke on floor 2"}
    assert asked[0] == {"role": "system", "content": "s"}
