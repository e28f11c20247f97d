"""Shell completion: the shipped scripts match the CLI, and bash really completes commands and presets."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from lorawiz.cli.completion import completion_script
from lorawiz.presets import find_presets
from tests.conftest import REPO, subprocess_env

FILES = {"bash": "lorawiz.bash", "zsh": "_lorawiz", "fish": "lorawiz.fish"}


@pytest.mark.parametrize("shell", FILES)
def test_shipped_script_matches_the_cli(shell, cli):
    shipped = (REPO / "completions" / FILES[shell]).read_text()
    regenerate = f"lorawiz completion {shell} > completions/{FILES[shell]}"
    assert shipped == completion_script(shell), f"completions/{FILES[shell]} drifted: regenerate with `{regenerate}`"
    printed = cli("completion", shell)
    assert printed.exit_code == 0 and printed.output == shipped


def bash_complete(*words: str) -> list[str]:
    """Source completions/lorawiz.bash in a real bash and press TAB after `words`."""
    script = REPO / "completions" / "lorawiz.bash"
    line = " ".join(f'"{w}"' for w in words)
    program = (f'source "{script}"; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; '
               '_lorawiz_completion lorawiz; printf "%s\\n" "${COMPREPLY[@]}"')
    done = subprocess.run(["bash", "--norc", "-c", program], capture_output=True, text=True,
                          env=subprocess_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    return [w for w in done.stdout.splitlines() if w]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_command_names():
    assert {"presets", "config", "completion"} <= set(bash_complete("lorawiz", ""))
    assert bash_complete("lorawiz", "pre") == ["presets"]
    assert bash_complete("lorawiz", "config", "") == ["show"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_preset_names():
    assert bash_complete("lorawiz", "presets", "show", "") == list(find_presets())
    assert bash_complete("lorawiz", "presets", "show", "mem") == ["memory", "memory_efficient"]
    assert bash_complete("lorawiz", "config", "show", "--preset", "q") == ["quick", "quick_test"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_options():
    assert "--learning-rate" in bash_complete("lorawiz", "config", "show", "--lea")
