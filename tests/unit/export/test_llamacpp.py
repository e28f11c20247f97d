"""Finding llama.cpp's converter and quantiser, unpacking an sdist's llama.cpp sources, and the converter's
failures read into one line with the fix."""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import sys
import tarfile

import pytest

from lorawiz.errors import LorawizError
from lorawiz.export.llamacpp import (
    CONVERTER,
    QUANTIZE_WITH_LLAMA_CPP_PYTHON,
    converter_error,
    find_llama_cpp,
    find_quantiser,
    unpack_sources,
)

# What convert_hf_to_gguf.py prints (llama.cpp as vendored by llama-cpp-python 0.3.36).
UNSUPPORTED = "INFO:hf-to-gguf:Loading model: m\nERROR:hf-to-gguf:Model FooForCausalLM is not supported\n"
UNKNOWN_BPE = ("WARNING:hf-to-gguf:** WARNING: The BPE pre-tokenizer was not recognized!\nTraceback (most recent call "
               "last):\n  File \"conversion/base.py\", line 1953\nNotImplementedError: BPE pre-tokenizer was not "
               "recognized - update get_vocab_base_pre()\n")
NO_MODULE = "Traceback (most recent call last):\nModuleNotFoundError: No module named 'sentencepiece'\n"
OTHER = "INFO:x\nTraceback (most recent call last):\nValueError: Can not map tensor 'model.foo.weight'\nINFO:y\n"


def test_unsupported_architecture_is_named_with_the_fix():
    error = converter_error(UNSUPPORTED, "merged/m", "log")
    assert "does not support the architecture FooForCausalLM of merged/m" in error.message
    assert "nothing was written" in error.message and "--llama-cpp DIR" in error.hint


def test_unknown_bpe_pre_tokenizer_is_named_with_the_fix():
    error = converter_error(UNKNOWN_BPE, "merged/m", "log")
    assert "does not recognise the tokenizer of merged/m" in error.message
    assert "convert_hf_to_gguf_update.py" in error.hint


def test_missing_module_says_what_to_install():
    error = converter_error(NO_MODULE, "m", "log")
    assert "sentencepiece" in error.message and error.hint.startswith("pip install sentencepiece")


def test_other_failures_give_the_error_line_and_the_log():
    error = converter_error(OTHER, "m", "/cache/export.log")
    assert error.message.endswith("ValueError: Can not map tensor 'model.foo.weight'")
    assert "/cache/export.log" in error.hint
    assert "\n" not in error.message


def _tree(folder):
    (folder / "conversion").mkdir(parents=True)
    (folder / CONVERTER).write_text("print('hi')\n")
    (folder / "conversion" / "__init__.py").write_text("")
    return folder


def test_llama_cpp_dir_is_a_checkout_or_an_unpacked_sdist(tmp_path, monkeypatch):
    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    checkout = _tree(tmp_path / "llama.cpp")
    assert find_llama_cpp(checkout).root == checkout
    sdist = _tree(tmp_path / "sdist" / "vendor" / "llama.cpp")
    assert find_llama_cpp(tmp_path / "sdist").root == sdist
    monkeypatch.setenv("LLAMA_CPP_DIR", str(checkout))
    assert find_llama_cpp(None).converter == checkout / CONVERTER
    with pytest.raises(LorawizError, match=f"--llama-cpp {tmp_path}: no {CONVERTER} there"):
        find_llama_cpp(tmp_path)


def _add(tar, name, text):
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def test_an_sdist_file_is_unpacked_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    archive = tmp_path / "llama_cpp_python-9.9.9.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        _add(tar, f"llama_cpp_python-9.9.9/vendor/llama.cpp/{CONVERTER}", "print('converter')\n")
        _add(tar, "llama_cpp_python-9.9.9/vendor/llama.cpp/conversion/llama.py", "x = 1\n")
        _add(tar, "llama_cpp_python-9.9.9/vendor/llama.cpp/gguf-py/gguf/__init__.py", "")
        _add(tar, "llama_cpp_python-9.9.9/vendor/llama.cpp/ggml/src/ggml.c", "int x;\n")  # not the converter's
        _add(tar, "llama_cpp_python-9.9.9/vendor/llama.cpp/../../escape.py", "bad\n")
        _add(tar, "llama_cpp_python-9.9.9/llama_cpp/llama_cpp.py", "")
    found = find_llama_cpp(archive, cache_root=tmp_path / "cache")
    assert found.root == tmp_path / "cache" / "llama.cpp" / "llama_cpp_python-9.9.9"
    assert (found.root / CONVERTER).read_text() == "print('converter')\n"
    assert (found.root / "conversion" / "llama.py").is_file() and (found.root / "gguf-py" / "gguf").is_dir()
    assert not (found.root / "ggml").exists() and not (tmp_path / "cache" / "escape.py").exists()
    (found.root / CONVERTER).write_text("kept")
    assert (find_llama_cpp(archive, cache_root=tmp_path / "cache").converter.read_text() == "kept")  # once


def test_an_archive_without_the_converter_is_refused(tmp_path):
    archive = tmp_path / "other.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        _add(tar, "pkg-1.0/setup.py", "")
    with pytest.raises(LorawizError, match="holds no llama.cpp convert_hf_to_gguf.py"):
        unpack_sources(archive, tmp_path / "out")


def test_quantiser_is_llama_quantize_in_the_checkout_first(tmp_path):
    checkout = _tree(tmp_path / "llama.cpp")
    binary = checkout / "build" / "bin" / "llama-quantize"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert find_quantiser(find_llama_cpp(checkout), "q4_k_m") == [str(binary)]


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is not None or shutil.which("llama-quantize") is not None,
                    reason="a quantiser is installed here, so there is nothing to refuse")
def test_without_a_quantiser_k_quants_are_refused_with_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LorawizError, match="--quant q4_k_m needs llama.cpp's quantiser") as raised:
        find_quantiser(find_llama_cpp(_tree(tmp_path / "llama.cpp")), "q4_k_m")
    assert "pip install llama-cpp-python" in raised.value.hint


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")
def test_with_llama_cpp_python_the_quantiser_is_its_binding(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_quantiser(find_llama_cpp(_tree(tmp_path / "llama.cpp")), "q4_k_m") == [
        sys.executable, "-c", QUANTIZE_WITH_LLAMA_CPP_PYTHON]
    assert os.path.basename(sys.executable).startswith("python")
