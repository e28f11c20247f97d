"""Token counts for canonical rows: the model's chat template, then a batched fast tokenizer.

Used by `lorawiz inspect` and by training, so that both count the same tokens; `load_tokenizer` is the one
tokenizer loader (training, eval, merge and chat load through it). Without a tokenizer, lengths are estimated
from characters (about four per token in English text; OpenAI, "What are tokens and how to count them") and
always labelled as an estimate.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lorawiz.errors import LorawizError, first_line

CHARS_PER_TOKEN = 4  # English rule of thumb (OpenAI tokenizer guide); code and other languages run denser
UNBOUNDED = 1_000_000  # transformers reports "no limit" as a huge model_max_length


def load_tokenizer(name_or_path: str, *, flag: str | None = None, trust_remote_code: bool | None = None,
                   cache_dir: str | None = None) -> Any:
    """A tokenizer from a local folder, a Hub model id or a `builtin:` model, fast (Rust) where one exists: the one
    tokenizer loader.

    Offline it reads the local cache at once. `flag` (e.g. "--tokenizer") starts the error messages.
    """
    named = f"{flag} {name_or_path}" if flag else name_or_path
    if name_or_path.startswith("builtin:"):
        from lorawiz.builtin import resolve_builtin

        name_or_path = resolve_builtin(name_or_path)
    if name_or_path.startswith(("/", "./", "../", "~")) and not Path(name_or_path).expanduser().is_dir():
        raise LorawizError(f"{named}: no such folder.",
                           hint="Give a folder holding tokenizer.json (or a Hub model id such as Qwen/Qwen2.5-7B).")
    name_or_path = str(Path(name_or_path).expanduser()) if name_or_path.startswith("~") else name_or_path
    from transformers import AutoTokenizer

    from lorawiz.hub import hub_reachable

    local = Path(name_or_path).is_dir()
    offline = not local and not hub_reachable()  # the cache only, at once, not ~20 s of connection retries
    try:
        return AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code, cache_dir=cache_dir,
                                             **({"local_files_only": True} if offline else {}))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        reason = first_line(exc)
        where = " (the Hub is unreachable from here, and it is not in the local cache)" if offline else ""
        raise LorawizError(f"{named}: could not load a tokenizer{where} ({reason}).",
                           hint="Give a folder with tokenizer files, or a Hub model id (the Hub must be reachable; "
                                "set HF_TOKEN for gated models).") from exc


def model_limit(tokenizer: Any, name_or_path: str | None = None) -> int | None:
    """The longest sequence the model takes: its config's max_position_embeddings, else the tokenizer's limit."""
    if name_or_path:
        try:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(name_or_path)
            text_config = getattr(config, "get_text_config", lambda: config)()
            limit = getattr(text_config, "max_position_embeddings", None)
            if isinstance(limit, int) and 0 < limit < UNBOUNDED:
                return limit
        except Exception:  # a tokenizer-only folder has no model config: fall back to the tokenizer  # noqa: BLE001
            pass
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < UNBOUNDED else None


def plain_render(row: Mapping[str, Any]) -> str:
    """A row as text without a chat template: one `role: content` line per turn."""
    if "text" in row and "messages" not in row:
        return str(row["text"])
    lines = []
    for message in row.get("messages", []):
        content = message.get("content")
        if not content and message.get("tool_calls"):
            content = json.dumps(message["tool_calls"], ensure_ascii=False)
        lines.append(f"{message.get('role')}: {content}")
    return "\n".join(lines)


class TokenCounter:
    """Counts the tokens of canonical rows in batches; `estimate` is True when there is no tokenizer."""

    def __init__(self, tokenizer: Any = None, name: str | None = None) -> None:
        self.tokenizer = tokenizer
        self.name = name or getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        self.estimate = tokenizer is None
        self.templated = bool(tokenizer is not None and getattr(tokenizer, "chat_template", None))
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self._fast = getattr(backend, "encode_batch_fast", None)

    @property
    def method(self) -> str:
        if self.estimate:
            return f"estimate: characters / {CHARS_PER_TOKEN}; pass --tokenizer MODEL for exact counts"
        how = "its chat template" if self.templated else "role: content lines (it has no chat template)"
        return f"tokenizer {self.name}, rows rendered with {how}"

    def render(self, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        """The text each row is trained as."""
        if not self.templated:
            return [plain_render(row) for row in rows]
        chats = [row for row in rows if "messages" in row]
        if len(chats) < len(rows):
            return [self._render_one(row) for row in rows]
        try:
            return list(self.tokenizer.apply_chat_template([row["messages"] for row in rows], tokenize=False))
        except Exception:  # one row the template rejects (e.g. a tool call shape); render row by row  # noqa: BLE001
            return [self._render_one(row) for row in rows]

    def _render_one(self, row: Mapping[str, Any]) -> str:
        if "messages" not in row:
            return plain_render(row)
        try:
            return self.tokenizer.apply_chat_template(row["messages"], tokenize=False)
        except Exception:  # noqa: BLE001
            return plain_render(row)

    def count_texts(self, texts: list[str]) -> list[int]:
        if self.estimate:
            return [math.ceil(len(text) / CHARS_PER_TOKEN) for text in texts]
        specials = not self.templated  # a chat template writes its own BOS and turn markers
        if self._fast is not None:
            return [len(encoding) for encoding in self._fast(texts, add_special_tokens=specials)]
        ids = self.tokenizer(texts, add_special_tokens=specials, return_attention_mask=False)["input_ids"]
        return [len(row) for row in ids]

    def count(self, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """Token length of each row, as it would be trained."""
        return self.count_texts(self.render(rows))
