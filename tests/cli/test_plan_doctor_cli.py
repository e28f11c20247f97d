"""`lorawiz plan` and `lorawiz doctor` from the command line: exit codes, JSON, messages."""

from __future__ import annotations

import json


def write_chat(path, n):
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"question {i} " * 20},
                                                     {"role": "assistant", "content": "answer " * 40}]}) + "\n"
                            for i in range(n)))
    return path


def test_plan_fits_exit_0_and_json_has_every_part(cli, tmp_path):
    data = write_chat(tmp_path / "d.jsonl", 300)
    result = cli("plan", "--model", "meta-llama/Llama-3.1-8B", "--data", str(data), "--hardware", "t4", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["fits"] is True and report["values"]["load_in_4bit"]["value"] is True
    assert report["memory"]["total_bytes"] <= 0.9 * 15360 * 2**20
    assert report["data"]["rows"] == 300 and report["time"]["seconds"] > 0
    assert report["values"]["lora_alpha"]["value"] == 2 * report["values"]["lora_r"]["value"]


def test_plan_table_shows_sources_and_user_values_win(cli, tmp_path):
    data = write_chat(tmp_path / "d.jsonl", 300)
    result = cli("plan", "--model", "llama3.2-1b", "--data", str(data), "--hardware", "a100-80gb", "--preset",
                 "memory", "--lora-r", "32")
    assert result.exit_code == 0, result.output
    assert "lora_r" in result.output and "--lora-r" in result.output and "preset memory" in result.output
    assert "predicted peak memory per GPU" in result.output and "fits: yes" in result.output


def test_plan_that_does_not_fit_exits_3_with_the_cheapest_change(cli, tmp_path):
    result = cli("plan", "--model", "meta-llama/Llama-3.1-70B", "--hardware", "rtx4090")
    assert result.exit_code == 3, result.output
    assert "fits: no" in result.output and "GPU with at least" in result.output


def test_plan_errors(cli, tmp_path):
    result = cli("plan", "--hardware", "t4")
    assert result.exit_code == 2 and "--model" in result.output
    result = cli("plan", "--model", "llama3.1-8b", "--hardware", "h100")
    assert result.exit_code == 0
    result = cli("plan", "--model", "llama3.1-8b", "--hardware", "h1000")
    assert result.exit_code == 2 and "did you mean" in result.output.lower()
    result = cli("plan", "--model", str(tmp_path / "nope"))
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_doctor_on_a_machine_without_a_gpu(cli, monkeypatch):
    """The probe and the torch build are faked as a CPU machine's, so this passes on a GPU machine too."""
    from lorawiz import doctor
    from lorawiz.hardware import nvml

    monkeypatch.setattr(nvml, "_probe_gpus", lambda notes: ([], None, None))
    monkeypatch.setattr(doctor, "read_torch", lambda: doctor.TorchFacts("2.13.0+cpu", cuda=None, sees_gpu=False,
                                                                        device_count=0))
    result = cli("doctor")
    assert result.exit_code == 0, result.output
    assert "training will run on the CPU" in result.output and "ready to train" in result.output
    report = json.loads(cli("doctor", "--json").output)
    assert report["ok"] is True and report["hardware"]["gpus"] == []
