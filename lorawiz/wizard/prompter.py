"""Questions asked one way: through questionary in a terminal, or answered from defaults (`--yes`), or not at all
(`--no-input`, or no terminal on stdin), in which case a missing answer names the flag that gives it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lorawiz.errors import LorawizError

Validator = Callable[[str], "str | None"]  # None when the answer is fine, else the reason to ask again


class Cancelled(Exception):
    """Ctrl-C at a prompt."""


@dataclass
class Missing:
    """Required answers nobody gave, collected so that `--no-input` reports them all at once."""

    flags: list[str] = field(default_factory=list)


@dataclass
class Prompter:
    interactive: bool = True
    accept_defaults: bool = False  # --yes: take every recommendation without asking
    input: Any = None  # prompt_toolkit input/output, for tests (questionary's own tests do the same)
    output: Any = None
    missing: Missing = field(default_factory=Missing)
    say: Callable[[str], None] = lambda text: None  # how the journey speaks between questions (the CLI's console)
    show: Callable[[Any], None] = lambda renderable: None

    @classmethod
    def for_flags(cls, yes: bool, no_input: bool, input: Any = None, output: Any = None,
                  say: Callable[[str], None] | None = None, show: Callable[[Any], None] | None = None) -> Prompter:
        tty = input is not None or sys.stdin.isatty()
        talk = {k: v for k, v in (("say", say), ("show", show)) if v is not None}
        return cls(interactive=tty and not no_input, accept_defaults=yes, input=input, output=output, **talk)

    def _io(self) -> dict[str, Any]:
        return {k: v for k, v in (("input", self.input), ("output", self.output)) if v is not None}

    def _ask(self, question: Any) -> Any:
        return _ask_or_cancel(question)

    def required(self, flag: str, message: str, validate: Validator, default: str | None = None,
                 path: bool = False) -> str | None:
        """A value the run cannot do without: asked, else missing (and reported with the others)."""
        if not self.interactive:
            if default is not None:
                return default
            self.missing.flags.append(flag)
            return None
        return self.text(message, default or "", validate, path=path)

    def text(self, message: str, default: str, validate: Validator | None = None, path: bool = False) -> str:
        """Free text; `path`: a file path, which Tab completes."""
        import questionary

        def check(answer: str) -> bool | str:
            if validate is None:
                return True
            reason = validate(answer)
            return True if reason is None else reason

        if not path:
            return self._ask(questionary.text(message, default=default, validate=check, **self._io()))
        from prompt_toolkit.shortcuts import CompleteStyle

        # as a shell does: Tab inserts what all matches share (a second Tab lists them), and Enter answers
        return self._ask(questionary.path(message, default=default, validate=check,
                                          complete_style=CompleteStyle.READLINE_LIKE, **self._io()))

    def select(self, message: str, choices: Sequence[tuple[Any, str]], default: Any, search: bool = False) -> Any:
        """One of `choices` (value, title); the default when not asking. `search`: typing filters the list."""
        if not self.interactive or self.accept_defaults:
            return default
        import questionary

        options = [questionary.Choice(title, value=value) for value, title in choices]
        chosen = next((c for c in options if c.value == default), options[0])
        extra = {"use_search_filter": True, "use_jk_keys": False} if search else {}
        return self._ask(questionary.select(message, choices=options, default=chosen, **extra, **self._io()))

    def confirm(self, message: str, default: bool) -> bool:
        if not self.interactive or self.accept_defaults:
            return default
        import questionary

        # auto_enter=False: y or n, then Enter. Answering on the key alone left the Enter typed after it for the
        # next question (prompt_toolkit keeps unread keys as typeahead for the next prompt), which it then took.
        return bool(self._ask(questionary.confirm(message, default=default, auto_enter=False, **self._io())))

    def raise_missing(self) -> None:
        if self.missing.flags:
            flags = ", ".join(self.missing.flags)
            raise LorawizError(f"missing {flags}: nothing to ask without a terminal (--no-input).",
                               hint=f"Give {flags} on the command line, or run lorawiz init in a terminal.")


def _ask_or_cancel(question: Any) -> Any:
    try:
        answer = question.unsafe_ask()
    except KeyboardInterrupt as exc:
        raise Cancelled from exc
    if answer is None:
        raise Cancelled
    return answer
