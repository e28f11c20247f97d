"""`lorawiz init` driven through its real prompts (prompt_toolkit pipe input, as questionary's own tests do)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading

import pytest
import yaml
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from lorawiz.errors import LorawizError
from lorawiz.hardware import parse_hardware_spec
from lorawiz.wizard.flow import InitOptions, _model_choices, run_wizard
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


def drive(keys: list[str], opts: InitOptions, said: list[str] | None = None):
    """Run the wizard with `keys` typed, one prompt's worth at a time (each prompt reads what is waiting)."""
    with create_pipe_input() as pipe:
        prompter = Prompter(interactive=True, input=pipe, output=DummyOutput(),
                            say=said.append if said is not None else lambda text: None)
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
            "n" + ENTER,  # no validation split file
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
    keys = ["n" + ENTER,  # no split
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
    drive([f"{tmp_path / 'nope.jsonl'}{ENTER}", CLEAR_LINE + f"{data}{ENTER}", "n" + ENTER, ENTER], opts)
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
        drive(["y" + ENTER, CTRL_C], opts)  # split into train/val files, then Ctrl-C at the plan
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tickets.jsonl"]


def _alpaca(tmp_path, answer):
    """200 rows in alpaca shape, so that the wizard offers a clean chat copy."""
    path = tmp_path / "tickets.jsonl"
    path.write_text("".join(json.dumps({"instruction": f"ticket {i} " * 10, "output": answer(i)}) + "\n"
                            for i in range(200)))
    return path


def test_a_y_n_answer_and_the_enter_after_it_answer_only_their_own_question(tmp_path):
    """y and Enter arrive together; the confirm used to answer on the y alone and leave the Enter (prompt_toolkit's
    typeahead) to the next question, which then took its default unseen."""
    data = _alpaca(tmp_path, lambda i: f"a free answer, number {i}")
    opts = InitOptions(model="llama3.2-1b", data=str(data), preset="quick", hardware="t4",
                       config_out=str(tmp_path / "run.yaml"))
    result = drive([ENTER,  # task: the suggestion
                    "y" + ENTER,  # a clean chat copy: yes
                    "y" + ENTER,  # a validation split: yes
                    ENTER], opts)  # plan: accept
    assert result.values["task"] == "chat"  # free answers: not a label set
    assert result.values["train_file"] == str(tmp_path / "tickets.chat.train.jsonl")
    assert result.values["validation_file"] == str(tmp_path / "tickets.chat.val.jsonl")


def test_the_task_question_comes_after_the_data_and_suggests_classification_for_labels(tmp_path, data):
    said: list[str] = []
    opts = InitOptions(model="llama3.2-1b", data=str(data), preset="quick", hardware="t4",
                       config_out=str(tmp_path / "run.yaml"))
    result = drive([ENTER, "n" + ENTER, ENTER], opts, said)  # task: the suggestion; no split; accept
    assert result.values["task"] == "classification"  # every answer is one of a few labels ("billing")
    assert said[0].startswith("data: 200 rows, shape messages")


def test_a_converted_copy_from_an_earlier_run_is_reused_when_identical_else_kept_beside(tmp_path):
    data = _alpaca(tmp_path, lambda i: ("fire", "flood")[i % 2])
    keys = ["y" + ENTER, "n" + ENTER, ENTER]  # a chat copy: yes; no split; accept
    copy, other = tmp_path / "tickets.chat.jsonl", tmp_path / "tickets.chat-2.jsonl"

    def run(n: int, typed: list[str] = keys, said: list[str] | None = None):
        return drive(typed, InitOptions(model="llama3.2-1b", data=str(data), task="classification", preset="quick",
                                        hardware="t4", config_out=str(tmp_path / f"run{n}.yaml")), said)

    assert run(1).values["train_file"] == str(copy)
    said: list[str] = []
    assert run(2, said=said).values["train_file"] == str(copy) and not other.exists()
    assert f"{copy} is already there with the same content: using it" in said
    copy.write_text(copy.read_text().replace("ticket 1 ", "TICKET 1 ", 1))  # edited by hand since
    edited = copy.read_text()
    assert run(3).values["train_file"] == str(other) and copy.read_text() == edited
    with pytest.raises(Cancelled):  # reuses tickets.chat-2.jsonl, then Ctrl-C: what it reused stays
        run(4, ["y" + ENTER, "n" + ENTER, CTRL_C])
    assert copy.read_text() == edited and other.is_file() and not (tmp_path / "tickets.chat-3.jsonl").exists()


def test_built_in_names_make_an_output_folder_without_colons(tmp_path):
    result = run_wizard(InitOptions(model="builtin:tiny", data="builtin:triage", hardware="cpu",
                                    config_out=str(tmp_path / "run.yaml")), Prompter(interactive=False))
    assert result.values["output_dir"] == "outputs/tiny-triage"
    assert result.values["task"] == "classification"  # six incident categories


def test_without_a_gpu_the_model_list_offers_builtin_tiny_and_marks_what_fits(tmp_path):
    box = tmp_path / "box.json"
    box.write_text(json.dumps({"gpus": [], "ram_bytes": 16 * 2**30, "cpu_cores": 4}))
    choices, default = _model_choices(parse_hardware_spec(str(box)))
    titles = dict(choices)
    assert next(iter(titles)) == "builtin:tiny" == default
    assert titles["meta-llama/Llama-3.2-1B-Instruct"].endswith("fp32, fits")
    assert titles["meta-llama/Llama-3.3-70B-Instruct"].endswith("fp32, too big")
    unknown = dict(_model_choices(parse_hardware_spec("cpu"))[0])  # a CPU spec: its RAM is not known
    assert unknown["Qwen/Qwen2.5-7B-Instruct"].endswith("fit unknown (RAM unknown)")
    result = drive([ENTER, ENTER], InitOptions(data="builtin:triage", task="classification", preset="quick",
                                               hardware=str(box), config_out=str(tmp_path / "run.yaml")))
    assert result.values["model_name_or_path"] == "builtin:tiny"


def test_yes_with_a_plan_that_does_not_fit_exits_3_with_a_change_that_works(tmp_path, data):
    out = tmp_path / "run.yaml"
    command = [sys.executable, "-m", "lorawiz", "init", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--data",
               str(data), "--task", "chat", "--preset", "quick", "--hardware", "t4", "--config-out", str(out),
               "--set", "load_in_4bit=false", "--yes"]
    refused = subprocess.run(command, capture_output=True, text=True, env=subprocess_env(CI="true"),
                             stdin=subprocess.DEVNULL)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "the plan does not fit" in refused.stderr and not out.exists()
    change = re.search(r"Cheapest change: .*\((--set \S+)\)", refused.stderr)
    assert change, refused.stderr
    done = subprocess.run(command + change.group(1).split(), capture_output=True, text=True,
                          env=subprocess_env(CI="true"), stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    assert yaml.safe_load(out.read_text())["model"]["load_in_4bit"] is True


def test_values_at_the_plan_step_and_in_the_config_read_as_typed(tmp_path, data):
    out = tmp_path / "run.yaml"
    opts = InitOptions(model="llama3.2-1b", data=str(data), task="chat", preset="standard", hardware="a100-80gb",
                       config_out=str(out))
    keys = ["n" + ENTER,  # no split
            DOWN + ENTER, "learning_rate" + ENTER, ENTER,  # change learning_rate: keep the value offered
            DOWN + ENTER, "packing" + ENTER, ENTER,  # and packing
            ENTER]  # plan: accept
    result = drive(keys, opts)
    rate = re.search(r"--set learning_rate=(\S+)", result.command)
    assert rate and re.fullmatch(r"\d(\.\d+)?e-\d+", rate.group(1)), result.command  # 2e-4, not 0.0002
    assert "--set packing=false" in result.command
    text = out.read_text()
    assert f"  # --set learning_rate={rate.group(1)}" in text and "packing: false  # --set packing=false" in text


def test_tab_completes_the_data_path(tmp_path, data):
    opts = InitOptions(model="llama3.2-1b", task="chat", preset="quick", hardware="t4",
                       config_out=str(tmp_path / "run.yaml"))
    result = drive([f"{tmp_path}/tick", "\t", ENTER, "n" + ENTER, ENTER], opts)
    assert result.values["train_file"] == str(data)


def test_train_runs_the_printed_train_command(tmp_path):
    """--train hands over to `lorawiz train CONFIG` itself, so its hints and resume line name that command."""
    out = tmp_path / "run.yaml"
    done = subprocess.run([sys.executable, "-m", "lorawiz", "init", "--model", "builtin:tiny", "--data",
                           "builtin:triage", "--config-out", str(out), "--output-dir", str(tmp_path / "o"), "--yes",
                           "--set", "max_steps=2", "--train"], capture_output=True, text=True,
                          env=subprocess_env(CI="true"), stdin=subprocess.DEVNULL, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"running: lorawiz train {out} --plain" in done.stdout
    assert (tmp_path / "o" / "adapter_model.safetensors").is_file()


def test_the_plan_step_offers_lr_find_here_and_takes_the_rate_it_suggests(tmp_path, data):
    out = tmp_path / "run.yaml"
    opts = InitOptions(model="builtin:tiny", data=str(data), task="chat", preset="quick", config_out=str(out),
                       output_dir=str(tmp_path / "outputs"))  # planned for this machine: the sweep runs here
    said: list[str] = []
    keys = ["n" + ENTER,  # no split
            DOWN + DOWN + ENTER,  # plan: find a learning rate
            ENTER,  # use the suggested rate: yes
            ENTER]  # plan: accept
    result = drive(keys, opts, said)
    assert any(line.startswith("lr-find: 100 training steps") for line in said)
    rate = re.search(r"--set learning_rate=(\S+)", result.command).group(1)
    assert yaml.safe_load(out.read_text())["training"]["learning_rate"] == float(rate)
    assert f"  # --set learning_rate={rate}" in out.read_text()
    assert not (tmp_path / "outputs").exists()  # the sweep saved nothing into the run's folder


def test_preference_pairs_make_a_dpo_config_that_passes_train_dry_run(tmp_path):
    env = subprocess_env(CI="true")
    out = tmp_path / "run.yaml"
    done = subprocess.run([sys.executable, "-m", "lorawiz", "init", "--model", "builtin:tiny", "--data",
                           "builtin:triage-pairs", "--config-out", str(out), "--output-dir", str(tmp_path / "o"),
                           "--yes"], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "preference pairs (chosen/rejected): the run trains with DPO" in done.stdout
    assert "--set method=dpo" in done.stdout  # in the command that repeats it without questions
    saved = yaml.safe_load(out.read_text())
    assert saved["training"]["method"] == "dpo" and saved["training"]["beta"] == 0.1
    dry = subprocess.run([sys.executable, "-m", "lorawiz", "train", str(out), "--dry-run"], capture_output=True,
                         text=True, env=env)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "dry run: nothing trained" in dry.stdout
