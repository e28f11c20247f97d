"""Shared fixtures: a CLI runner over the real app, and paths into the checkout."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
# Tokenised training data is cached in the datasets cache: the suite's entries go to a folder of its own (set
# before datasets is imported; subprocesses inherit it), not into the developer's ~/.cache.
_DATASETS_CACHE = tempfile.mkdtemp(prefix="lorawiz-tests-datasets-")
os.environ["HF_DATASETS_CACHE"] = _DATASETS_CACHE
atexit.register(shutil.rmtree, _DATASETS_CACHE, True)


@pytest.fixture(autouse=True)
def _no_stray_settings(monkeypatch):
    """Tests see neither the developer's preset folders nor debug mode unless they ask for them."""
    monkeypatch.delenv("LORAWIZ_PRESETS", raising=False)
    monkeypatch.delenv("LORAWIZ_DEBUG", raising=False)


@pytest.fixture
def cli():
    """Invoke the real `lorawiz` app in-process: cli("config", "show", "--json")."""
    from lorawiz.cli import app

    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None):
        return runner.invoke(app, list(args), env=env, prog_name="lorawiz")

    return invoke


def lorawiz_exe() -> str:
    """The installed console script next to this Python (the venv's bin)."""
    exe = VENV_BIN / "lorawiz"
    return str(exe) if exe.exists() else "lorawiz"


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORAWIZ_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env
