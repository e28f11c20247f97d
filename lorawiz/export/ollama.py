"""The Ollama Modelfile written beside an exported GGUF: FROM the file, the chat template in Ollama's Go-template
syntax when the model's Jinja template is a known family, and the end-of-turn tokens as stop parameters."""

from __future__ import annotations

from dataclasses import dataclass

HEADER = "# Modelfile written by lorawiz export gguf"  # the first line: a file lorawiz may replace (--overwrite)


@dataclass(frozen=True)
class ChatFamily:
    name: str
    markers: tuple[str, ...]  # all of them in a Jinja chat template: this family
    template: str  # Ollama's Go template for it
    stops: tuple[str, ...]  # the tokens that end a turn


# The templates are those Ollama ships for these families (its template/chatml.gotmpl and
# template/llama3-instruct.gotmpl): every message, then the generation prompt of the assistant.
FAMILIES = (
    ChatFamily("ChatML", ("<|im_start|>", "<|im_end|>"),
               "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
               "<|im_start|>assistant\n",
               ("<|im_start|>", "<|im_end|>")),
    ChatFamily("Llama 3", ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
               "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>"
               "{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n",
               ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")),
)


def chat_family(jinja: str | None) -> ChatFamily | None:
    """The known family a Jinja chat template belongs to, or None (no template, or one of its own)."""
    if not jinja:
        return None
    return next((family for family in FAMILIES if all(marker in jinja for marker in family.markers)), None)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def modelfile_text(gguf_name: str, jinja: str | None, eos_tokens: list[str] | tuple[str, ...] = ()) -> str:
    """The Modelfile for `gguf_name` (a file beside it): its FROM line, TEMPLATE and PARAMETER stop lines."""
    family = chat_family(jinja)
    stem = gguf_name.removesuffix(".gguf")
    lines = [f"{HEADER} for {gguf_name}.", f"# Create the model: ollama create NAME -f {stem}.Modelfile", "",
             f"FROM ./{gguf_name}", ""]
    stops = list(family.stops) if family else []
    stops += [token for token in eos_tokens if token and token not in stops]
    if family is not None:
        if '"""' in family.template:  # cannot happen for the shipped families; a guard for new ones
            raise ValueError(f"the {family.name} template holds triple quotes")
        lines += [f"# The chat template: {family.name}, as Ollama writes it (the model's Jinja template is "
                  f"{family.name}).", f'TEMPLATE """{family.template}"""']
    else:
        reason = "the model has no chat template" if not jinja else "its Jinja template is not a family lorawiz maps"
        lines += [f"# No TEMPLATE here: {reason} (known: {', '.join(f.name for f in FAMILIES)}). Ollama then "
                  "reads the GGUF's embedded tokenizer.chat_template and uses a template of its own that matches it, "
                  "else the plain prompt; add a TEMPLATE line if the replies look wrong."]
    lines += [f"PARAMETER stop {_quoted(token)}" for token in stops]
    return "\n".join(lines) + "\n"
