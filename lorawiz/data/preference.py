"""Preference data (chosen/rejected pairs) in the shapes people have, as one canonical row: TRL's conversational
preference form, `{"prompt": [turns], "chosen": [assistant turns], "rejected": [assistant turns]}`.

Shapes read (each row decides by its own fields):
- whole conversations under chosen and rejected that share their prompt (Anthropic HH as messages): the turns both
  start with are the prompt;
- a prompt (text or turns) beside chosen and rejected answers (text, turns, or whole conversations that repeat the
  prompt: UltraFeedback binarized), as TRL's own datasets are;
- ShareGPT pairs, LLaMA-Factory's dpo data: "conversations" (from/value turns) beside chosen and rejected turns;
- Intel/orca_dpo_pairs' columns: "system", "question", "chosen", "rejected".

Pure: standard library only, plain data in and out, like lorawiz.data.formats.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lorawiz.data.formats import SHAREGPT_ROLES, RowProblem, validate_messages

PROMPT_FIELDS = ("prompt", "question", "instruction", "input", "query")
SIDES = ("chosen", "rejected")


def is_preference_row(row: Any) -> bool:
    return isinstance(row, Mapping) and all(side in row for side in SIDES)


def convert_preference(row: Mapping[str, Any], system: str | None = None) -> dict[str, Any]:
    """One row in any of the shapes above -> the canonical preference row; RowProblem when it cannot be one."""
    if not is_preference_row(row):
        raise RowProblem("not a preference row", 'a preference row needs "chosen" and "rejected"')
    prompt = _prompt(row)
    chosen, rejected = (_turns(row[side], side) for side in SIDES)
    if prompt is None:  # whole conversations: the turns both start with are the prompt
        shared = _shared_prefix(chosen, rejected)
        prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
    else:  # answers that repeat the prompt (UltraFeedback's chosen = prompt + answer) lose the repeat
        chosen, rejected = (_after(prompt, side) for side in (chosen, rejected))
    system = row.get("system") or system
    if system and not (prompt and prompt[0]["role"] == "system"):
        prompt = [{"role": "system", "content": _text(system, '"system"')}, *prompt]
    for name, answer in (("chosen", chosen), ("rejected", rejected)):
        if not answer or any(turn["role"] != "assistant" for turn in answer):
            raise RowProblem("bad preference answer", f'"{name}" must hold the assistant\'s answer after the prompt '
                                                      f"(found roles {[turn['role'] for turn in answer]})")
        validate_messages([*prompt, *answer])  # a prompt ending with the user's turn, answers with content
    if chosen == rejected:
        raise RowProblem("identical pair", "chosen and rejected are the same answer: no preference to learn")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def longer_conversation(pair: Mapping[str, Any]) -> dict[str, Any]:
    """A canonical pair as the one conversation that bounds its length: the prompt and the longer answer (the
    longest sequence the pair puts in a batch), for counting tokens and turns as any chat row."""
    chosen, rejected = pair["chosen"], pair["rejected"]
    size = [sum(len(str(turn.get("content") or "")) for turn in side) for side in (chosen, rejected)]
    return {"messages": [*pair["prompt"], *(chosen if size[0] >= size[1] else rejected)]}


def _prompt(row: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    if isinstance(row.get("conversations"), list):  # ShareGPT pairs (LLaMA-Factory)
        return _turns(row["conversations"], "conversations")
    found = next((name for name in PROMPT_FIELDS if row.get(name) is not None), None)
    if found is None:
        return None
    value = row[found]
    if isinstance(value, str):
        return [{"role": "user", "content": _text(value, f'"{found}"')}]
    return _turns(value, found)


def _turns(value: Any, name: str) -> list[dict[str, Any]]:
    """Text (an assistant answer), one turn, or a list of turns (role/content or from/value) -> role/content."""
    if isinstance(value, str):
        return [{"role": "assistant", "content": _text(value, f'"{name}"')}]
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list):
        raise RowProblem("wrong type", f'"{name}" must be text or a list of turns, got {type(value).__name__}')
    turns = []
    for index, turn in enumerate(value):
        if not isinstance(turn, Mapping):
            raise RowProblem("wrong type", f'"{name}" turn {index} must be an object')
        speaker = str(turn.get("role", turn.get("from", ""))).lower()
        role = speaker if speaker in ("system", "user", "assistant", "tool") else SHAREGPT_ROLES.get(speaker)
        if role is None or role == "tool_call":
            raise RowProblem("unknown role", f'"{name}" turn {index}: unknown speaker "{speaker}"')
        turns.append({"role": role, "content": _text(turn.get("content", turn.get("value")),
                                                     f'"{name}" turn {index} content')})
    return turns


def _shared_prefix(chosen: list[dict[str, Any]], rejected: list[dict[str, Any]]) -> int:
    """How many turns both start with, up to the last user turn before they part (the answers differ)."""
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    while shared and chosen[shared - 1]["role"] == "assistant":  # an answer both share is still the answer
        shared -= 1
    return shared


def _after(prompt: list[dict[str, Any]], answer: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The answer's turns after the prompt's, when it repeats the prompt; else the answer as it is."""
    body = [turn for turn in prompt if turn["role"] != "system"]
    start = 1 if answer and answer[0]["role"] == "system" else 0
    if answer[start:start + len(body)] == body:
        return answer[start + len(body):]
    return answer


def _text(value: Any, what: str) -> str:
    if value is None:
        raise RowProblem("missing field", f"{what} is missing")
    if not isinstance(value, str):
        raise RowProblem("wrong type", f"{what} must be text, got {type(value).__name__}")
    return value
