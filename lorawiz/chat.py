"""`lorawiz chat` as a library call: talk to a fine-tuned model through its chat template, with streamed output."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lorawiz.models import chat_dtype_and_device, describe_target, load_model, load_tokenizer_for


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
        """The answer as it is generated; the turn joins the history once complete."""
        from transformers import TextIteratorStreamer

        ids = self.tokenizer.apply_chat_template(self.messages(prompt), add_generation_prompt=True,
                                                 return_tensors="pt", return_dict=True)
        ids = {k: v.to(self.model.device) for k, v in ids.items()}
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        sampling = ({"do_sample": True, "temperature": self.temperature, "top_p": 0.9} if self.temperature > 0
                    else {"do_sample": False})
        kwargs = {**ids, "streamer": streamer, "max_new_tokens": self.max_new_tokens,
                  "pad_token_id": self.tokenizer.pad_token_id, **sampling}
        worker = threading.Thread(target=self.model.generate, kwargs=kwargs, daemon=True)
        worker.start()
        answer = []
        for piece in streamer:
            answer.append(piece)
            yield piece
        worker.join()
        self.history += [{"role": "user", "content": prompt}, {"role": "assistant", "content": "".join(answer)}]


def open_session(target: str, base: str | None = None, system: str | None = None, max_new_tokens: int = 512,
                 temperature: float = 0.7) -> ChatSession:
    resolved = describe_target(target, base)
    dtype, device = chat_dtype_and_device()
    model = load_model(resolved, dtype, device=device)
    return ChatSession(model, load_tokenizer_for(resolved), system, max_new_tokens, temperature)


def repl(session: ChatSession, read: Callable[[str], str], write: Callable[[str], None]) -> None:
    """The interactive loop: /reset clears the conversation, /exit (or Ctrl-D / Ctrl-C) leaves.

    `read(prompt)` asks for a line and `write(text)` shows text (the CLI's terminal): this module prints nothing.
    """
    write("chat: /reset starts over, /exit leaves\n")
    while True:
        try:
            prompt = read("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            write("\n")
            return
        if prompt in ("/exit", "/quit"):
            return
        if prompt == "/reset":
            session.reset()
            write("(conversation cleared)\n")
            continue
        if not prompt:
            continue
        write("model> ")
        for piece in session.stream(prompt):
            write(piece)
        write("\n")
