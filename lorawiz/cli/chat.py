"""`lorawiz chat`: talk to a fine-tuned model, with streamed answers; --prompt answers once, for scripts."""

from __future__ import annotations

from typing import Annotated

import typer

from lorawiz.cli._funnel import funnel


@funnel
def chat_command(
    target: Annotated[str, typer.Argument(metavar="TARGET", help="An adapter folder, a merged model or a hub id.")],
    base: Annotated[str | None, typer.Option("--base", metavar="MODEL", help="The base model of an adapter "
                                             "[default: from adapter_config.json].")] = None,
    system: Annotated[str | None, typer.Option("--system", metavar="TEXT", help="A system prompt.")] = None,
    prompt: Annotated[str | None, typer.Option("--prompt", metavar="TEXT", help="Answer this once and exit.")
                      ] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Longest answer in tokens.")] = 512,
    temperature: Annotated[float, typer.Option("--temperature", help="Sampling temperature; 0 answers "
                                               "deterministically.")] = 0.7,
) -> None:
    """Chat with a model through its chat template; answers stream as they are generated.

    In the conversation, /reset starts over and /exit leaves. Ctrl-C stops an answer and returns to the
    prompt; Ctrl-C or Ctrl-D at the prompt leaves with exit code 130, as does Ctrl-C during --prompt;
    input piped in that ends leaves with 0.

    \b
    Examples:
      lorawiz chat outputs/my-run
      lorawiz chat outputs/my-run --prompt "A tanker is leaking on the ring road." --temperature 0
    """
    import sys

    from lorawiz.chat import LEFT_BY_EOF, LEFT_BY_INTERRUPT, answer, open_session, repl
    from lorawiz.console import is_plain, say
    from lorawiz.errors import INTERRUPTED, LorawizError
    from lorawiz.libraries import hide_optional_kernel_warning, quiet_libraries

    hide_optional_kernel_warning()
    quiet_libraries(plain=is_plain())

    if max_new_tokens < 1:
        raise LorawizError(f"--max-new-tokens {max_new_tokens}: must be at least 1.", hint="For example 256.")
    if temperature < 0:
        raise LorawizError(f"--temperature {temperature}: must be 0 or more.", hint="For example 0.7, or 0.")

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()  # streamed: each piece shows as it is generated

    session = open_session(target, base, system, max_new_tokens, temperature)
    if prompt is not None:
        if not answer(session, prompt, write):
            say("interrupted: the answer was stopped.", stderr=True)
            raise typer.Exit(INTERRUPTED)
        return
    ended = repl(session, read=input, write=write)
    # Ctrl-D typed in a terminal is an interrupt like Ctrl-C (130); a pipe that ends is a script finishing (0).
    if ended == LEFT_BY_INTERRUPT or (ended == LEFT_BY_EOF and sys.stdin.isatty()):
        raise typer.Exit(INTERRUPTED)
