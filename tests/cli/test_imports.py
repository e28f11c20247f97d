"""--help and tab completion never import the heavy libraries (they take seconds to load)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import subprocess_env

HEAVY = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "bitsandbytes", "unsloth", "questionary")

# Runs the CLI in-process, then reports which heavy modules ended up in sys.modules.
PROBE = """
import sys
args = sys.argv[1:]
try:
    if args == ["--import-only"]:
        import lorawiz.cli
    else:
        from lorawiz.cli import app
        app(args=args, prog_name="lorawiz")
except SystemExit:
    pass
heavy = {heavy!r}
print("HEAVY:" + " ".join(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
"""


def loaded_heavy_modules(*args: str, **env: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], capture_output=True, text=True,
                          env=subprocess_env(**env), timeout=120)
    assert done.returncode == 0, done.stderr
    report = [line for line in done.stdout.splitlines() if line.startswith("HEAVY:")]
    assert len(report) == 1, done.stdout
    return report[0].removeprefix("HEAVY:").split()


@pytest.mark.parametrize(
    "args",
    [
        ["--import-only"],
        ["--help"],
        ["--version"],
        ["presets", "--help"],
        ["presets", "show", "--help"],
        ["config", "show", "--help"],
        ["completion", "--help"],
        ["format", "--help"],
        ["presets"],
        ["config", "show", "--preset", "default"],
    ],
)
def test_commands_and_help_import_nothing_heavy(args):
    assert loaded_heavy_modules(*args) == []


@pytest.mark.parametrize("words", ["lorawiz ", "lorawiz presets show ", "lorawiz config show --preset "])
def test_tab_completion_imports_nothing_heavy(words):
    env = {"_LORAWIZ_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()))}
    assert loaded_heavy_modules(**env) == []


def test_the_probe_would_see_a_heavy_import():
    # Guards the guard: the same probe reports a heavy module when one is imported.
    done = subprocess.run([sys.executable, "-c", "import questionary\n" + PROBE.format(heavy=HEAVY), "--import-only"],
                          capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert "questionary" in done.stdout
