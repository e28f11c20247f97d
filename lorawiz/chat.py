"""`lorawiz chat` as a library call: talk to a fine-tuned model through its chat template, with streamed output.

The answer is generated in a worker thread while the caller reads it piece by piece. Ctrl-C (or closing the stream)
stops it cleanly: a stop flag that generation checks after every token, then the thread is joined, so the process
never exits with a thread inside torch (which aborts with "terminate called without an active exception").
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lorawiz.errors import LorawizError
from lorawiz.models import chat_dtype_and_device, describe_target, head_labels, load_model, load_tokenizer_for

LEFT_BY_EXIT, LEFT_BY_EOF, LEFT_BY_INTERRUPT = "exit", "eof", "interrupt"  # how the conversation ended


@dataclass
class ChatSession:
    model: Any
    tokenizer: Any
    system: str | None = None
    max_new_tokens: int = 512
    temperature: float = 0.7
    history: list[dict[str, str]] = field(default_factory=list)

    def reset(self) -> None:
        self.history.clear()

    def messages(self, prompt: str) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, *self.history, {"role": "user", "content": prompt}]

    def stream(self, prompt: str) -> Iterator[str]:
        """The answer as it is generated; the turn joins the history once complete.

        Interrupted (Ctrl-C while waiting for a piece, or the caller closing the generator), generation stops at
        the next token and its thread is joined before the interruption goes on; a stopped answer is left out of
        the history.
        """
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        ids = self.tokenizer.apply_chat_template(self.messages(prompt), add_generation_prompt=True,
                                                 return_tensors="pt", return_dict=True)
        ids = {k: v.to(self.model.device) for k, v in ids.items()}
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        sampling = ({"do_sample": True, "temperature": self.temperature, "top_p": 0.9} if self.temperature > 0
                    else {"do_sample": False})
        stop = threading.Event()
        kwargs = {**ids, "streamer": streamer, "max_new_tokens": self.max_new_tokens,
                  "pad_token_id": self.tokenizer.pad_token_id,
                  "stopping_criteria": StoppingCriteriaList([_stop_when_set(stop)]), **sampling}
        failed: list[BaseException] = []

        def generate() -> None:
            try:
                self.model.generate(**kwargs)
            except BaseException as exc:  # handed to the reading thread, which raises it
                failed.append(exc)
                streamer.end()  # the reader waits for the end of the stream: never leave it waiting

        worker = threading.Thread(target=generate, name="lorawiz-chat-generate", daemon=True)
        worker.start()
        answer = []
        try:
            for piece in streamer:
                answer.append(piece)
                yield piece
        finally:
            stop.set()
            _join(worker, stop)
        if failed:
            raise failed[0]
        self.history += [{"role": "user", "content": prompt}, {"role": "assistant", "content": "".join(answer)}]


def _stop_when_set(flag: threading.Event) -> Any:
    import torch
    from transformers import StoppingCriteria

    class StopWhenSet(StoppingCriteria):
        """Ends generation after the current token once the flag is set (Ctrl-C in the reading thread)."""

        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), flag.is_set(), dtype=torch.bool, device=input_ids.device)

    return StopWhenSet()


def _join(worker: threading.Thread, stop: threading.Event) -> None:
    """Wait for the generating thread; another Ctrl-C meanwhile only repeats the stop (one token's wait at most)."""
    while worker.is_alive():
        try:
            worker.join()
        except KeyboardInterrupt:
            stop.set()


def open_session(target: str, base: str | None = None, system: str | None = None, max_new_tokens: int = 512,
                 temperature: float = 0.7) -> ChatSession:
    resolved = describe_target(target, base)
    if head_labels(resolved) is not None:
        raise LorawizError(f"{target} is a classifier (a sequence head): it scores its labels and writes no text.",
                           hint=f"Score it on labelled rows with: lorawiz eval {target} --data FILE")
    dtype, device = chat_dtype_and_device()
    model = load_model(resolved, dtype, device=device)
    return ChatSession(model, load_tokenizer_for(resolved), system, max_new_tokens, temperature)


def answer(session: ChatSession, prompt: str, write: Callable[[str], None]) -> bool:
    """Stream one answer to `write`; False when Ctrl-C stopped it (generation is then stopped and joined)."""
    try:
        with contextlib.closing(session.stream(prompt)) as pieces:
            for piece in pieces:
                write(piece)
    except KeyboardInterrupt:
        write("\n")
        return False
    write("\n")
    return True


def repl(session: ChatSession, read: Callable[[str], str], write: Callable[[str], None]) -> str:
    """The interactive loop: /reset clears the conversation, /exit or Ctrl-D leaves, Ctrl-C stops an answer (and,
    at the prompt, leaves). Returns how it ended: LEFT_BY_EXIT, LEFT_BY_EOF or LEFT_BY_INTERRUPT.

    `read(prompt)` asks for a line and `write(text)` shows text (the CLI's terminal): this module prints nothing.
    """
    write("chat: /reset starts over, /exit leaves, Ctrl-C stops an answer\n")
    while True:
        try:
            prompt = read("you> ").strip()
        except EOFError:
            write("\n")
            return LEFT_BY_EOF
        except KeyboardInterrupt:
            write("\n")
            return LEFT_BY_INTERRUPT
        if prompt in ("/exit", "/quit"):
            return LEFT_BY_EXIT
        if prompt == "/reset":
            session.reset()
            write("(conversation cleared)\n")
            continue
        if not prompt:
            continue
        write("model> ")
        if not answer(session, prompt, write):
            write("(answer stopped; Ctrl-C again or /exit leaves)\n")
