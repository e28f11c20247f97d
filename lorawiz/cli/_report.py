"""The training runner's reporter over this console: lines through `say`, renderables printed whole."""

from __future__ import annotations

from typing import Any


def reporter() -> Any:
    from lorawiz.console import get_console, is_plain, say
    from lorawiz.train.runner import Reporter

    plain = is_plain()
    return Reporter(say=say, show=lambda renderable: get_console().print(renderable, soft_wrap=plain))
