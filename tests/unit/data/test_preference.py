"""Preference rows in the shapes people have, each to TRL's conversational preference form."""

from __future__ import annotations

import pytest

from lorawiz.data.formats import RowProblem
from lorawiz.data.preference import convert_preference

USER = {"role": "user", "content": "What is 2 + 2?"}
GOOD = {"role": "assistant", "content": "4"}
BAD = {"role": "assistant", "content": "5"}
EXPECTED = {"prompt": [USER], "chosen": [GOOD], "rejected": [BAD]}


@pytest.mark.parametrize(("row", "expected"), [
    # whole conversations sharing their prompt (Anthropic HH as messages)
    ({"chosen": [USER, GOOD], "rejected": [USER, BAD]}, EXPECTED),
    # TRL's standard form: prompt text, answers text
    ({"prompt": "What is 2 + 2?", "chosen": "4", "rejected": "5"}, EXPECTED),
    # UltraFeedback binarized: the prompt as text, each answer a conversation that repeats it
    ({"prompt": "What is 2 + 2?", "chosen": [USER, GOOD], "rejected": [USER, BAD]}, EXPECTED),
    # TRL's conversational form, already canonical
    ({"prompt": [USER], "chosen": [GOOD], "rejected": [BAD]}, EXPECTED),
    # LLaMA-Factory's dpo demo data: ShareGPT turns and one turn each
    ({"conversations": [{"from": "human", "value": "What is 2 + 2?"}], "chosen": {"from": "gpt", "value": "4"},
      "rejected": {"from": "gpt", "value": "5"}}, EXPECTED),
    # Intel/orca_dpo_pairs
    ({"system": "Be brief.", "question": "What is 2 + 2?", "chosen": "4", "rejected": "5"},
     {"prompt": [{"role": "system", "content": "Be brief."}, USER], "chosen": [GOOD], "rejected": [BAD]}),
])
def test_every_shape_becomes_the_same_canonical_row(row, expected):
    assert convert_preference(row) == expected


def test_a_multi_turn_prompt_is_what_both_conversations_share_up_to_the_last_user_turn():
    earlier = [USER, {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3 + 3?"}]
    row = {"chosen": [*earlier, {"role": "assistant", "content": "6"}],
           "rejected": [*earlier, {"role": "assistant", "content": "7"}]}
    found = convert_preference(row, system="You are terse.")
    assert found["prompt"] == [{"role": "system", "content": "You are terse."}, *earlier]
    assert found["chosen"] == [{"role": "assistant", "content": "6"}]


@pytest.mark.parametrize(("row", "kind"), [
    ({"prompt": "Q", "chosen": "same", "rejected": "same"}, "identical pair"),
    ({"chosen": [USER, GOOD], "rejected": [USER, GOOD]}, "identical pair"),
    ({"prompt": "Q", "chosen": "", "rejected": "no"}, "empty content"),
    ({"prompt": "Q", "chosen": 4, "rejected": "no"}, "wrong type"),
    ({"prompt": [GOOD], "chosen": "a", "rejected": "b"}, "bad role order"),
    ({"chosen": [USER, GOOD], "rejected": [{"role": "user", "content": "other"}, BAD]}, "bad preference answer"),
    ({"prompt": "Q", "chosen": [{"from": "robot", "value": "x"}], "rejected": "b"}, "unknown role"),
])
def test_rows_that_hold_no_usable_preference_are_refused_with_their_kind(row, kind):
    with pytest.raises(RowProblem) as raised:
        convert_preference(row)
    assert raised.value.kind == kind


def _json_values():
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    turn = st.fixed_dictionaries({}, optional={"role": st.sampled_from(["user", "assistant", "system", "gpt", "x"]),
                                               "from": st.sampled_from(["human", "gpt"]), "content": scalars,
                                               "value": scalars})
    side = scalars | turn | st.lists(turn, max_size=4)
    optional = {"prompt": side, "system": scalars, "conversations": st.lists(turn, max_size=3), "question": scalars}
    return st.fixed_dictionaries({"chosen": side, "rejected": side}, optional=optional)


def test_any_row_converts_to_a_valid_pair_or_is_refused_as_a_row_problem():
    from hypothesis import given, settings

    @settings(max_examples=300, deadline=None)
    @given(_json_values())
    def check(row):
        try:
            found = convert_preference(row)
        except RowProblem:
            return
        assert found["chosen"] != found["rejected"] and found["prompt"][-1]["role"] == "user"
        assert all(turn["role"] == "assistant" for side in ("chosen", "rejected") for turn in found[side])

    check()
