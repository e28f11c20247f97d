"""A tokenised example as the model sees it, with the trained tokens marked (`train --dry-run`); pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def render_example(pieces: Sequence[tuple[str, bool]], plain: bool, assistant_only: bool) -> list[Any]:
    """Rich Text lines: a heading, the example (trained tokens highlighted, or in [brackets] when plain), a count."""
    from rich.text import Text

    heading = Text("first example, as the model sees it (" + ("trained tokens in [brackets]" if plain else
                                                               "trained tokens highlighted") + "):")
    line = Text()
    for token, trained in pieces:
        if plain:
            line.append(f"[{token}]" if trained else token)
        else:
            line.append(token, style="bold black on green" if trained else "dim")
    trained = sum(1 for _, t in pieces if t)
    which = "the assistant's answers" if assistant_only else "every token"
    return [heading, line, Text(f"{trained} of {len(pieces)} tokens are trained on ({which})")]
