"""Ctrl-C in chat and in the data commands, sent as a real SIGINT to a real process.

chat: Ctrl-C while an answer streams stops it and returns to the prompt (no "terminate called without an active
exception", no exit 134); Ctrl-C at the prompt, or during --prompt, exits 130. format/split/mix/merge: Ctrl-C says
what was and was not written, exits 130 and leaves no partial file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import subprocess_env

PROMPT = "Smoke on the third floor of the library."
LONG = ["--temperature", "0", "--max-new-tokens", "100000"]  # builtin:tiny answers greedily without ever stopping


def start(*args: str, stdin=subprocess.DEVNULL) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lorawiz", *map(str, args)], stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=subprocess_env(CI="true"))


def read_until(proc: subprocess.Popen, pattern: str, seen: bytearray, timeout: float = 120) -> str:
    """Read stdout into `seen` until it matches `pattern` (a regular expression over the text)."""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, seen.decode(errors="replace"), re.DOTALL):
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(proc.stdout.fileno(), 4096) if ready else b""
        if not chunk:
            proc.kill()
            raise AssertionError(f"no {pattern!r} in the output: ...{seen.decode(errors='replace')[-500:]!r} "
                                 f"{proc.stderr.read().decode(errors='replace')}")
        seen += chunk
    return seen.decode(errors="replace")


def finish(proc: subprocess.Popen, seen: bytearray) -> tuple[str, str]:
    out, err = proc.communicate(timeout=120)
    return (bytes(seen) + out).decode(errors="replace"), err.decode(errors="replace")


def assert_clean_exit(proc: subprocess.Popen, err: str) -> None:
    assert proc.returncode == 130, err
    assert "terminate called" not in err and "Traceback" not in err and "internal error" not in err, err


def test_chat_ctrl_c_stops_the_answer_and_returns_to_the_prompt():
    chat = start("chat", "builtin:tiny", *LONG, stdin=subprocess.PIPE)
    seen = bytearray()
    chat.stdin.write(f"{PROMPT}\n".encode())
    chat.stdin.flush()
    read_until(chat, r"model> .*\S.*\S", seen)  # the answer is streaming
    chat.send_signal(signal.SIGINT)
    read_until(chat, r"\(answer stopped[^\n]*\)\nyou> $", seen)  # back at the prompt
    chat.stdin.write(b"/reset\n")  # and the conversation still works
    chat.stdin.flush()
    read_until(chat, r"\(conversation cleared\)\nyou> $", seen)
    chat.send_signal(signal.SIGINT)  # Ctrl-C at the prompt leaves
    out, err = finish(chat, seen)
    assert_clean_exit(chat, err)
    assert out.count("model> ") == 1


def test_chat_prompt_ctrl_c_mid_answer_exits_130():
    chat = start("chat", "builtin:tiny", "--prompt", PROMPT, *LONG)
    seen = bytearray()
    read_until(chat, r"\S.*\S", seen)
    chat.send_signal(signal.SIGINT)
    out, err = finish(chat, seen)
    assert_clean_exit(chat, err)
    assert err.strip().splitlines()[-1] == "interrupted: the answer was stopped."


def test_chat_end_of_input_leaves_normally():
    done = subprocess.run([sys.executable, "-m", "lorawiz", "chat", "builtin:tiny", "--max-new-tokens", "2"],
                          input="/reset\n", capture_output=True, text=True, env=subprocess_env(CI="true"), timeout=300)
    assert done.returncode == 0, done.stderr
    assert "(conversation cleared)" in done.stdout and "Traceback" not in done.stderr


def test_closing_a_stream_stops_generation_and_joins_its_thread():
    from lorawiz.chat import open_session

    session = open_session("builtin:tiny", max_new_tokens=100000, temperature=0)
    pieces = session.stream(PROMPT)
    assert [next(pieces) for _ in range(3)]
    pieces.close()
    assert not [t for t in threading.enumerate() if t.name == "lorawiz-chat-generate"]
    assert session.history == []  # a stopped answer is not part of the conversation


# The data commands: SIGINT once their temporary output exists, that is in the middle of writing.

@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """200,000 alpaca rows (27 MB): a few seconds of work, so that the signal lands mid-run."""
    path = tmp_path_factory.mktemp("big") / "big.jsonl"
    with path.open("w") as handle:
        for i in range(200_000):
            handle.write(json.dumps({"instruction": f"Question {i} about the incident", "output": f"Answer {i}. " * 5})
                         + "\n")
    return path


def writing(folder: Path, merge: bool) -> bool:
    """A temporary output exists: data/writers.py's `.NAME.XXXXXXXX.tmp` files, merge's `.NAME.XXXXXXXX` folder."""
    return any(p.name.endswith(".tmp") or (merge and p.is_dir()) for p in folder.glob(".*"))


COMMANDS = {
    "format": lambda src, out, adapter: (["format", src, "-o", out / "clean.jsonl"], [out / "clean.jsonl"]),
    "split": lambda src, out, adapter: (["split", src, "--train-out", out / "t.jsonl", "--val-out", out / "v.jsonl"],
                                        [out / "t.jsonl", out / "v.jsonl"]),
    "mix": lambda src, out, adapter: (["mix", f"{src}:0.5", f"{src}:0.5", "-o", out / "mixed.jsonl"],
                                      [out / "mixed.jsonl"]),
    "merge": lambda src, out, adapter: (["merge", adapter, "-o", out / "merged", "--dtype", "fp32"],
                                        [out / "merged"]),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_ctrl_c_says_what_was_written(command, big, adapter, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    args, outputs = COMMANDS[command](big, out, adapter)
    before = hashlib.sha256(big.read_bytes()).hexdigest()
    proc = start(*args)
    deadline = time.monotonic() + 120
    while proc.poll() is None and not writing(out, command == "merge") and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, err = finish(proc, bytearray())
    assert_clean_exit(proc, err)
    said = err.strip().splitlines()[-1]
    if said == "interrupted: nothing was written.":
        assert not [p for p in outputs if p.exists()]
    else:  # the signal came after some renames: the message names exactly those
        written = [p for p in outputs if p.exists()]
        missing = [p for p in outputs if not p.exists()]
        assert written and said == (f"interrupted: wrote {', '.join(map(str, written))}"
                                    + (f"; {', '.join(map(str, missing))} not written." if missing else "."))
    assert not writing(out, command == "merge")  # no partial file or folder left
    assert hashlib.sha256(big.read_bytes()).hexdigest() == before


def test_chat_ctrl_d_typed_in_a_terminal_exits_130():
    """Ctrl-D at the prompt of a terminal (a pty here) leaves like Ctrl-C; only piped input ending leaves with 0."""
    import pty
    import time

    leader, follower = pty.openpty()
    chat = subprocess.Popen([sys.executable, "-m", "lorawiz", "chat", "builtin:tiny", "--max-new-tokens", "2"],
                            stdin=follower, stdout=follower, stderr=subprocess.PIPE, env=subprocess_env(CI="true"))
    os.close(follower)
    seen, deadline = b"", time.monotonic() + 240
    while b"Ctrl-C stops an answer" not in seen and time.monotonic() < deadline and chat.poll() is None:
        if select.select([leader], [], [], 1)[0]:  # the banner: the model is loaded, the prompt comes next
            seen += os.read(leader, 1024)
    assert b"Ctrl-C stops an answer" in seen, seen
    time.sleep(1)
    os.write(leader, b"\x04")  # Ctrl-D, as the terminal sends it
    try:
        assert chat.wait(timeout=60) == 130
    finally:
        chat.kill()
        os.close(leader)
