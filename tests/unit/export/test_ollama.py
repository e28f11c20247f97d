"""The Modelfile beside an exported GGUF: known Jinja families become Ollama templates, others are left to the GGUF."""

from __future__ import annotations

import pytest

from lorawiz.builtin.tokenizer import CHATML_TEMPLATE
from lorawiz.export.ollama import HEADER, chat_family, modelfile_text

LLAMA3_JINJA = (
    "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>"
    "\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
MISTRAL_JINJA = "{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}"


@pytest.mark.parametrize(("jinja", "family"), [
    (CHATML_TEMPLATE, "ChatML"),  # builtin:tiny's template
    (LLAMA3_JINJA, "Llama 3"),
    (MISTRAL_JINJA, None),
    ("", None),
    (None, None),
])
def test_chat_family_is_read_from_the_jinja_template(jinja, family):
    found = chat_family(jinja)
    assert (found.name if found else None) == family


def test_chatml_modelfile_has_from_template_and_stops():
    text = modelfile_text("my-model.gguf", CHATML_TEMPLATE, ["<|im_end|>"])
    lines = text.splitlines()
    assert lines[0].startswith(HEADER)
    assert "FROM ./my-model.gguf" in lines
    assert 'TEMPLATE """{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}' \
           '<|im_start|>assistant\n"""' in text
    stops = [line for line in lines if line.startswith("PARAMETER stop")]
    assert stops == ['PARAMETER stop "<|im_start|>"', 'PARAMETER stop "<|im_end|>"']  # the eos is not repeated
    assert "-f my-model.Modelfile" in text


def test_llama3_modelfile_uses_ollamas_llama3_template():
    text = modelfile_text("m.gguf", LLAMA3_JINJA, ["<|eot_id|>"])
    assert "<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>" in text
    assert text.rstrip().endswith('PARAMETER stop "<|eot_id|>"')
    assert 'PARAMETER stop "<|start_header_id|>"' in text


@pytest.mark.parametrize("jinja", [MISTRAL_JINJA, None])
def test_unknown_template_is_left_to_the_gguf_and_says_so(jinja):
    text = modelfile_text("m.gguf", jinja, ["</s>"])
    assert "TEMPLATE" not in text.replace("No TEMPLATE here", "").replace("add a TEMPLATE line", "")
    assert "tokenizer.chat_template" in text
    assert ("no chat template" in text) == (jinja is None)
    assert 'PARAMETER stop "</s>"' in text  # the end-of-turn token still stops generation


def test_stop_tokens_are_quoted():
    assert 'PARAMETER stop "a\\"b"' in modelfile_text("m.gguf", None, ['a"b'])
