"""Errors that reach the user: one message, one hint, one exit code.

Library code raises these; the CLI funnel (`lorawiz.cli._funnel`) prints them without a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

USER_ERROR = 2  # bad input: a flag, a file, a config value
INTERNAL_ERROR = 1  # a bug in lorawiz


class LorawizError(Exception):
    """A problem the user can fix: `message` says what is wrong, `hint` says how to fix it."""

    def __init__(self, message: str, hint: str | None = None, exit_code: int = USER_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


@dataclass(frozen=True)
class Problem:
    """One finding in a collected report: where it is (file and line, or flag) and what to do."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class ProblemsError(LorawizError):
    """Several problems found in one pass (a config with three mistakes reports all three at once)."""

    def __init__(self, subject: str, problems: list[Problem], hint: str | None = None) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        if count == 1:
            message = f"{subject}: {self.problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            message = f"{subject}: {count} problems\n{lines}"
        super().__init__(message, hint=hint)
