"""What `lorawiz push` uploads (lorawiz/publish/push.py upload_plan): checkpoints, locks and pickles stay behind
unless asked; a file that looks like a credential stops the push unless asked."""

from __future__ import annotations

import pytest

from lorawiz.errors import LorawizError
from lorawiz.publish.push import check_pushable, check_token, upload_plan


@pytest.fixture
def run(tmp_path):
    for name in ("adapter_model.safetensors", "adapter_config.json", "lorawiz.yaml", "README.md", ".lorawiz.lock",
                 "training_args.bin", "checkpoint-2/adapter_model.safetensors", "checkpoint-2/optimizer.pt",
                 "logs/events.out.tfevents.1"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def names(run, files):
    return sorted(p.relative_to(run).as_posix() for p in files)


def test_checkpoints_locks_and_pickles_stay_behind_and_the_card_is_made_anew(run):
    files, skipped = upload_plan(run)
    assert names(run, files) == ["adapter_config.json", "adapter_model.safetensors", "logs/events.out.tfevents.1",
                                 "lorawiz.yaml"]
    assert "checkpoint-2/ (a checkpoint)" in skipped and "training_args.bin" in skipped
    with_checkpoints, _ = upload_plan(run, include_checkpoints=True)
    assert "checkpoint-2/optimizer.pt" in names(run, with_checkpoints)


@pytest.mark.parametrize(("name", "content", "found"), [
    ("notes.txt", b"token: hf_" + b"Ab" * 17 + b"\n", "a Hugging Face token, line 1"),
    ("run.sh", b"#!/bin/sh\n\nexport AWS_ACCESS_KEY_ID=AKIA" + b"A" * 16, "an AWS access key, line 3"),
    ("keys.yaml", b"openai: sk-proj-" + b"x" * 40, "an API key (sk-...), line 1"),
    ("deploy", b"-----BEGIN OPENSSH PRIVATE KEY-----\n", "a private key, line 1"),
    (".env", b"NOTHING=here", "a credentials file by its name"),
])
def test_credentials_stop_the_push_unless_asked(run, name, content, found):
    (run / name).write_bytes(content)
    with pytest.raises(LorawizError) as caught:
        upload_plan(run)
    assert f"{name} ({found})" in caught.value.message and "--include-secrets" in caught.value.hint
    files, _ = upload_plan(run, include_secrets=True)
    assert name in names(run, files)


def test_token_shaped_text_that_is_no_token_passes(run):
    (run / "notes.txt").write_text("hf_short is not a token; neither is sk-abc\n")
    files, _ = upload_plan(run)
    assert "notes.txt" in names(run, files)


def test_a_folder_without_weights_is_refused(tmp_path):
    (tmp_path / "checkpoint-4").mkdir()
    with pytest.raises(LorawizError, match="holds no adapter or model weights") as caught:
        check_pushable(tmp_path)
    assert "has not finished" in caught.value.hint


def test_a_repo_without_namespace_is_refused(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 34)
    with pytest.raises(LorawizError, match="needs the namespace"):
        check_token("just-a-name")
