"""Dataset shapes: detect which one a file is in, convert each row to canonical chat rows, validate them.

Canonical rows are `{"messages": [{"role": ..., "content": ...}, ...]}` (roles system, user, assistant,
tool), or `{"text": ...}` for a plain-text corpus. Pure: standard library only, plain data in and out.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SHAPES = ("alpaca", "sharegpt", "messages", "prompt-completion", "text", "classification")
PREFERENCE = "preference"  # chosen/rejected pairs: read by `lorawiz format` (lorawiz.data.preference)
ROLES = ("system", "user", "assistant", "tool")

# ShareGPT speaker names and the roles they map to (function_call / observation: tool use).
SHAREGPT_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
    "bard": "assistant", "bing": "assistant", "model": "assistant", "system": "system",
    "function_call": "tool_call", "observation": "tool", "tool": "tool", "function": "tool",
}
TEXT_FIELDS = ("text", "sentence", "content", "input", "document", "review", "message", "question")
LABEL_FIELDS = ("label", "labels", "category", "class", "intent", "target")
PROMPT_FIELDS = ("prompt", "question", "query")
COMPLETION_FIELDS = ("completion", "response", "answer", "output")


class RowProblem(Exception):
    """A row that cannot be used: `kind` groups problems in the summary, `detail` says what is wrong."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class PreferenceData(Exception):
    """The file holds chosen/rejected pairs, which supervised fine-tuning does not use."""


@dataclass(frozen=True)
class Detection:
    shape: str
    reason: str


@dataclass
class ConvertOptions:
    """What `lorawiz format` was told: the shape (or auto), a system prompt, field names, the label set."""

    shape: str = "auto"
    system: str | None = None
    text_field: str | None = None
    label_field: str | None = None
    labels: tuple[str, ...] | None = None
    seen_labels: Counter = field(default_factory=Counter)
    preference: bool = False  # the caller takes preference rows (lorawiz.data.preference); training refuses them


def _shape_of(row: Any, opts: ConvertOptions) -> str | None:
    """The shape one row looks like, or None."""
    if not isinstance(row, Mapping):
        return None
    keys = set(row)
    if {"chosen", "rejected"} <= keys:
        return "preference"
    if isinstance(row.get("messages"), list):
        return "messages"
    if isinstance(row.get("conversations"), list) or isinstance(row.get("conversation"), list):
        return "sharegpt"
    if "instruction" in keys and ("output" in keys or "response" in keys):
        return "alpaca"
    label_field = opts.label_field or next((f for f in LABEL_FIELDS if f in keys), None)
    text_field = opts.text_field or next((f for f in TEXT_FIELDS if f in keys), None)
    if label_field in keys and text_field in keys:
        return "classification"
    if any(f in keys for f in PROMPT_FIELDS) and any(f in keys for f in COMPLETION_FIELDS):
        return "prompt-completion"
    if (opts.text_field or "text") in keys:
        return "text"
    return None


def detect_shape(sample: Iterable[Any], opts: ConvertOptions | None = None) -> Detection:
    """The shape most rows of `sample` have, and why; raises PreferenceData or RowProblem when none fits."""
    opts = opts or ConvertOptions()
    rows = list(sample)
    votes = Counter(s for s in (_shape_of(r, opts) for r in rows) if s)
    if not votes:
        keys = sorted({k for r in rows if isinstance(r, Mapping) for k in r})[:8]
        raise RowProblem("unknown shape", f"no known dataset shape in fields {keys}; name it with "
                                          "lorawiz format --from SHAPE (or --text-field F --label-field F)")
    shape, count = votes.most_common(1)[0]
    if shape == "preference":
        raise PreferenceData("this is preference data (chosen/rejected pairs), which supervised fine-tuning "
                             "does not use; train it with a preference method such as DPO")
    evidence = {
        "messages": 'a "messages" list of role/content turns',
        "sharegpt": 'a "conversations" list of from/value turns',
        "alpaca": '"instruction" and "output" fields',
        "classification": "a text field and a label field",
        "prompt-completion": "prompt and completion fields",
        "text": 'a "text" field only',
    }[shape]
    return Detection(shape, f"{count} of the first {len(rows)} rows have {evidence}")


# ---------------------------------------------------------------------------------------------------------
# Conversion


def convert_row(row: Any, shape: str, opts: ConvertOptions) -> dict[str, Any]:
    """One input row in `shape` -> one canonical row; RowProblem when it cannot be converted."""
    if type(row) is not dict and not isinstance(row, Mapping):  # the exact-type test first: it is the hot path
        raise RowProblem("not an object", f"expected a JSON object, got {type(row).__name__}")
    if "chosen" in row and "rejected" in row:
        raise RowProblem("preference row", "chosen/rejected pairs are preference data, not SFT data")
    converter = _CONVERTERS[shape]
    result = converter(row, opts)
    if "messages" in result:
        if opts.system and not any(m["role"] == "system" for m in result["messages"]):
            result["messages"].insert(0, {"role": "system", "content": opts.system})
        validate_messages(result["messages"])
    return result


def _text(value: Any, what: str) -> str:
    if value is None:
        raise RowProblem("missing field", f"{what} is missing")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise RowProblem("wrong type", f"{what} must be text, got {type(value).__name__}")
    return value


def _get(row: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in row and row[name] is not None:
            return row[name]
    return None


def _from_alpaca(row: Mapping[str, Any], opts: ConvertOptions) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    system = _get(row, "system")
    if system:
        messages.append({"role": "system", "content": _text(system, '"system"')})
    history = row.get("history") or []
    if not isinstance(history, list):
        raise RowProblem("wrong type", '"history" must be a list of [prompt, response] pairs')
    for i, turn in enumerate(history):
        if not (isinstance(turn, (list, tuple)) and len(turn) == 2):
            raise RowProblem("wrong type", f'"history" item {i} must be a [prompt, response] pair')
        messages.append({"role": "user", "content": _text(turn[0], f'"history" item {i} prompt')})
        messages.append({"role": "assistant", "content": _text(turn[1], f'"history" item {i} response')})
    instruction = _text(row.get("instruction"), '"instruction"')
    extra = _get(row, "input")
    if extra is not None and _text(extra, '"input"').strip():
        instruction = f"{instruction}\n\n{extra}" if instruction.strip() else str(extra)
    messages.append({"role": "user", "content": instruction})
    messages.append({"role": "assistant", "content": _text(_get(row, "output", "response"), '"output"')})
    return {"messages": messages}


def _from_sharegpt(row: Mapping[str, Any], opts: ConvertOptions) -> dict[str, Any]:
    turns = _get(row, "conversations", "conversation")
    if not isinstance(turns, list):
        raise RowProblem("missing field", '"conversations" must be a list of turns')
    messages: list[dict[str, Any]] = []
    system = _get(row, "system")
    if system:
        messages.append({"role": "system", "content": _text(system, '"system"')})
    for i, turn in enumerate(turns):
        if not isinstance(turn, Mapping):
            raise RowProblem("wrong type", f"turn {i} must be an object with from/value")
        speaker = str(turn.get("from", turn.get("role", ""))).lower()
        role = SHAREGPT_ROLES.get(speaker)
        if role is None:
            raise RowProblem("unknown role", f'turn {i}: unknown speaker "{speaker}"')
        content = _text(_get(turn, "value", "content"), f"turn {i} value")
        if role == "tool_call":
            messages.append({"role": "assistant", "content": "", "tool_calls": [_tool_call(content, i)]})
        else:
            messages.append({"role": role, "content": content})
    return {"messages": messages}


def _tool_call(content: str, index: int) -> dict[str, Any]:
    """A ShareGPT function_call turn (JSON with name and arguments) as an OpenAI-style tool call."""
    try:
        call = json.loads(content)
    except json.JSONDecodeError:
        raise RowProblem("bad tool call", f"turn {index}: function_call value is not JSON") from None
    if not isinstance(call, Mapping) or "name" not in call:
        raise RowProblem("bad tool call", f'turn {index}: function_call needs a "name"')
    arguments = call.get("arguments", {})
    return {"type": "function", "function": {"name": str(call["name"]), "arguments": arguments}}


def _from_messages(row: Mapping[str, Any], opts: ConvertOptions) -> dict[str, Any]:
    turns = row.get("messages")
    if not isinstance(turns, list):
        raise RowProblem("missing field", '"messages" must be a list of turns')
    messages = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, Mapping):
            raise RowProblem("wrong type", f"message {i} must be an object with role and content")
        role = str(turn.get("role", "")).lower()
        if role == "human":
            role = "user"
        elif role in ("gpt", "model"):
            role = "assistant"
        elif role == "function":
            role = "tool"
        if role not in ROLES:
            raise RowProblem("unknown role", f'message {i}: unknown role "{turn.get("role")}"')
        message: dict[str, Any] = {"role": role, "content": _content(turn.get("content"), i, turn)}
        for key in ("tool_calls", "tool_call_id", "name", "weight"):
            if turn.get(key) is not None:
                message[key] = turn[key]
        if "weight" in message and message["weight"] not in (0, 1):
            raise RowProblem("wrong type", f'message {i}: "weight" must be 0 or 1')
        messages.append(message)
    return {"messages": messages}


def _content(value: Any, index: int, turn: Mapping[str, Any]) -> str:
    """Content as a string, or a list of parts ({"type": "text", "text": ...}) joined."""
    if value is None and turn.get("tool_calls"):
        return ""
    if isinstance(value, list):
        parts = []
        for part in value:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and part.get("type", "text") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
                raise RowProblem("unsupported content", f"message {index}: content part of type {kind!r}")
        return "".join(parts)
    return _text(value, f"message {index} content")


def _from_prompt_completion(row: Mapping[str, Any], opts: ConvertOptions) -> dict[str, Any]:
    prompt = _text(_get(row, *PROMPT_FIELDS), '"prompt"')
    completion = _text(_get(row, *COMPLETION_FIELDS), '"completion"')
    messages = []
    system = _get(row, "system")
    if system:
        messages.append({"role": "system", "content": _text(system, '"system"')})
    messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
    return {"messages": messages}


def _from_text(row: Mapping[str, Any], opts: ConvertOptions) -> dict[str, Any]:
    name = opts.text_field or "text"
    text = _text(row.get(name), f'"{name}"')
    if not text.strip():
        raise RowProblem("empty content", f'"{name}" is empty')
    return {"text": text}


def _from_classification(row: Mapping[str, Any], opts: ConvertOptions) -> dict[str, Any]:
    text_field = opts.text_field or next((f for f in TEXT_FIELDS if f in row), "text")
    label_field = opts.label_field or next((f for f in LABEL_FIELDS if f in row), "label")
    text = _text(row.get(text_field), f'"{text_field}"')
    raw = row.get(label_field)
    if isinstance(raw, list) and len(raw) == 1:
        raw = raw[0]
    label = _text(raw, f'"{label_field}"').strip()
    if opts.labels is not None:
        if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < len(opts.labels) \
                and label not in opts.labels:
            label = opts.labels[raw]  # integer class ids name their label by position in --labels
        if label not in opts.labels:
            raise RowProblem("unknown label", f'label "{label}" is not one of --labels {",".join(opts.labels)}')
    if not label:
        raise RowProblem("empty content", f'"{label_field}" is empty')
    opts.seen_labels[label] += 1
    return {"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": label}]}


_CONVERTERS = {
    "alpaca": _from_alpaca,
    "sharegpt": _from_sharegpt,
    "messages": _from_messages,
    "prompt-completion": _from_prompt_completion,
    "text": _from_text,
    "classification": _from_classification,
}


# ---------------------------------------------------------------------------------------------------------
# Validation of canonical rows


def validate_messages(messages: list[Mapping[str, Any]]) -> None:
    """Roles in a sensible order, non-empty content, and the assistant speaks last."""
    if not messages:
        raise RowProblem("empty conversation", "no turns")
    roles = [m["role"] for m in messages]
    if "system" in roles[1:]:
        raise RowProblem("bad role order", "a system turn may only come first")
    turns = messages[1:] if roles[0] == "system" else messages
    if not turns:
        raise RowProblem("empty conversation", "only a system turn")
    if turns[0]["role"] != "user":
        raise RowProblem("bad role order", f'the first turn after the system prompt is "{turns[0]["role"]}", '
                                           'expected "user"')
    for i, message in enumerate(messages):
        content = message.get("content")
        if not message.get("tool_calls") and (not isinstance(content, str) or not content.strip()):
            raise RowProblem("empty content", f'turn {i} ("{message["role"]}") has no content')
    for prev, cur in zip(turns, turns[1:], strict=False):
        if prev["role"] == cur["role"] == "user":
            raise RowProblem("bad role order", "two user turns in a row")
        if cur["role"] == "tool" and not (prev["role"] == "tool" or prev.get("tool_calls")):
            raise RowProblem("bad role order", "a tool turn must follow an assistant tool call")
    if turns[-1]["role"] != "assistant" or turns[-1].get("tool_calls"):
        raise RowProblem("last turn not assistant",
                         f'"messages" must end with an assistant answer (last role is "{turns[-1]["role"]}")')
