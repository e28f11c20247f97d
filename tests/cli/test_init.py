"""`lorawiz init` driven through its real prompts (prompt_toolkit pipe input, as questionary's own tests do)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest
import yaml
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from lorawiz.errors import LorawizError
from lorawiz.wizard.flow import InitOptions, run_wizard
from lorawiz.wizard.prompter import Cancelled, Prompter
from tests.conftest import subprocess_env

ENTER, DOWN, CLEAR_LINE, CTRL_C = "\r", "\x1b[B", "\x15", "\x03"


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "tickets.jsonl"
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"ticket {i} " * 10},
                                                     {"role": "assistant", "content": "billing"}]}) + "\n"
                            for i in range(200)))
    return path


def drive(keys: list[str], opts: InitOptions):
    """Run the wizard with `keys` typed, one prompt's worth at a time (each prompt reads what is waiting)."""
    with create_pipe_input() as pipe:
        prompter = Prompter(interactive=True, input=pipe, output=DummyOutput())
        feeder = threading.Thread(target=_feed, args=(pipe, keys), daemon=True)
        feeder.start()
        try:
            return run_wizard(opts, prompter)
        finally:
            feeder.join(timeout=5)


def _feed(pipe, keys: list[str]) -> None:
    import time

    for key in keys:
        time.sleep(0.15)  # let the next prompt start before its keys arrive
        pipe.send_text(key)


def test_a_whole_journey_by_prompts_writes_a_config_that_trains(tmp_path, data):
    out = tmp_path / "run.yaml"
    opts = InitOptions(hardware="t4", config_out=str(out), output_dir=str(tmp_path / "outputs"))
    keys = [ENTER,  # model: the suggested one that fits a T4
            f"{data}{ENTER}",  # data path
            ENTER,  # task: chat
            ENTER,  # preset: standard
            "n",  # no validation split file
            ENTER]  # plan: accept
    result = drive(keys, opts)
    written = yaml.safe_load(out.read_text())
    assert written["data"]["train_file"] == str(data) and written["model"]["load_in_4bit"] is True
    assert "# recommender:" in out.read_text()
    assert result.command.startswith("lorawiz init --model ") and "--yes" in result.command
    shown = subprocess.run([sys.executable, "-m", "lorawiz", "config", "show", str(out), "--json"],
                           capture_output=True, text=True, env=subprocess_env())
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["sources"]["lora_r"]["label"] == f"file {out}"


def test_changing_a_value_at_the_plan_step_rechecks_it(tmp_path, data):
    out = tmp_path / "run.yaml"
    opts = InitOptions(model="llama3.2-1b", data=str(data), task="chat", preset="standard", hardware="a100-80gb",
                       config_out=str(out))
    keys = ["n",  # no split
            DOWN + ENTER,  # plan: change a value
            "lora_r" + ENTER,  # which value (type to filter)
            CLEAR_LINE + "0" + ENTER,  # out of range: asked again
            CLEAR_LINE + "48" + ENTER,
            ENTER]  # plan: accept
    result = drive(keys, opts)
    assert yaml.safe_load(out.read_text())["lora"]["lora_r"] == 48
    assert "--set lora_r=48" in result.command


def test_ctrl_c_at_a_prompt_writes_nothing(tmp_path, data):
    out = tmp_path / "run.yaml"
    with pytest.raises(Cancelled):
        drive([CTRL_C], InitOptions(hardware="t4", config_out=str(out)))
    assert not out.exists()


def test_a_missing_path_is_asked_again(tmp_path, data):
    out = tmp_path / "run.yaml"
    opts = InitOptions(model="llama3.2-1b", task="chat", preset="quick", hardware="t4", config_out=str(out))
    drive([f"{tmp_path / 'nope.jsonl'}{ENTER}", CLEAR_LINE + f"{data}{ENTER}", "n", ENTER], opts)
    assert yaml.safe_load(out.read_text())["data"]["train_file"] == str(data)


def test_no_input_names_every_missing_flag(tmp_path):
    prompter = Prompter(interactive=False)
    with pytest.raises(LorawizError, match="missing --model, --data"):
        run_wizard(InitOptions(hardware="t4", config_out=str(tmp_path / "x.yaml")), prompter)
    assert not (tmp_path / "x.yaml").exists()


def test_no_terminal_behaves_as_no_input_and_the_config_passes_train_dry_run(tmp_path):
    env = subprocess_env(CI="true")
    out = tmp_path / "run.yaml"
    missing = subprocess.run([sys.executable, "-m", "lorawiz", "init"], capture_output=True, text=True, env=env,
                             stdin=subprocess.DEVNULL)
    assert missing.returncode == 2 and "missing --model, --data" in missing.stderr
    done = subprocess.run([sys.executable, "-m", "lorawiz", "init", "--model", "builtin:tiny", "--data",
                           "builtin:triage", "--config-out", str(out), "--output-dir", str(tmp_path / "o"), "--yes"],
                          capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "train it: lorawiz train" in done.stdout
    dry = subprocess.run([sys.executable, "-m", "lorawiz", "train", str(out), "--dry-run"], capture_output=True,
                         text=True, env=env)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "tokens are trained on" in dry.stdout


def test_ctrl_c_after_a_split_removes_the_files_it_wrote(tmp_path, data):
    out = tmp_path / "run.yaml"
    opts = InitOptions(model="llama3.2-1b", data=str(data), task="chat", preset="quick", hardware="t4",
                       config_out=str(out))
    with pytest.raises(Cancelled):
        drive(["y", CTRL_C], opts)  # split into train/val files, then Ctrl-C at the plan
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tickets.jsonl"]
