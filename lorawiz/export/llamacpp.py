"""llama.cpp's own tools, found and run: its converter (convert_hf_to_gguf.py, a Python script) and its quantiser.

Where the converter comes from, first match wins:
1. --llama-cpp DIR (or $LLAMA_CPP_DIR): a llama.cpp checkout, the root of an unpacked llama-cpp-python sdist, or
   such an sdist file (llama_cpp_python-X.tar.gz), whose llama.cpp sources are unpacked into the cache once;
2. the llama.cpp sources that llama-cpp-python's sdist on PyPI vendors, for the installed llama-cpp-python version
   (else PINNED_LLAMA_CPP_PYTHON), downloaded once with pip into the lorawiz cache: the converter and the quantiser
   then come from the same llama.cpp commit.
The k-quants (q4_k_m ...) need llama.cpp's compiled quantiser: a llama-quantize binary in DIR (build/bin) or on
PATH, else llama-cpp-python's llama_model_quantize, run in a child process.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lorawiz.builtin.cache import default_cache_root
from lorawiz.builtin.tiny import MARKER, build_once
from lorawiz.errors import LorawizError

CONVERTER = "convert_hf_to_gguf.py"
# The release whose vendored llama.cpp the tests ran with (tests/integration/test_export.py), used when
# llama-cpp-python is not installed.
PINNED_LLAMA_CPP_PYTHON = "0.3.36"
# What the converter needs of a llama.cpp tree: the script, the conversion package it imports (split out of the
# script in 2026), its own gguf-py (the script puts it on sys.path), the licence and the requirement lists.
SOURCE_PARTS = (CONVERTER, "conversion/", "gguf-py/", "LICENSE", "requirements/")
CONVERTER_TYPES = ("f16", "bf16", "q8_0")  # convert_hf_to_gguf.py --outtype writes these itself
# The quantiser's types: llama-quantize's name and llama.h's llama_ftype number (LLAMA_FTYPE_MOSTLY_*).
QUANTISER_TYPES = {"q4_k_m": ("Q4_K_M", 15), "q5_k_m": ("Q5_K_M", 17), "q6_k": ("Q6_K", 18)}
QUANT_TYPES = (*CONVERTER_TYPES, *QUANTISER_TYPES)
QUANTISER_BINARY = "llama-quantize"
# Run in a child process, so that a crash in llama.cpp's C code cannot take lorawiz down with it.
QUANTIZE_WITH_LLAMA_CPP_PYTHON = """
import ctypes, sys
import llama_cpp
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = int(sys.argv[3])
params.nthread = 0  # 0: all cores (llama.h)
sys.exit(1 if llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(params)) else 0)
"""
# Python modules the converter imports -> the package to install.
PACKAGES = {"sentencepiece": "sentencepiece", "google": "protobuf", "numpy": "numpy", "torch": "torch",
            "transformers": "transformers", "safetensors": "safetensors", "yaml": "pyyaml", "mistral_common":
            "mistral-common"}
FLAG = "--llama-cpp"
ENV = "LLAMA_CPP_DIR"


@dataclass(frozen=True)
class LlamaCpp:
    root: Path  # the folder holding convert_hf_to_gguf.py
    origin: str  # where it came from, for the report ("--llama-cpp DIR", "llama-cpp-python 0.3.36 sources")

    @property
    def converter(self) -> Path:
        return self.root / CONVERTER


def installed_llama_cpp_python() -> str | None:
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        return None


def sources_cache(cache_root: str | Path | None = None) -> Path:
    return (Path(cache_root) if cache_root is not None else default_cache_root()) / "llama.cpp"


def find_llama_cpp(given: str | Path | None = None, cache_root: str | Path | None = None) -> LlamaCpp:
    """The llama.cpp tree to convert with: --llama-cpp / $LLAMA_CPP_DIR, else llama-cpp-python's sources."""
    where = f"{FLAG} {given}" if given else f"{ENV}={os.environ.get(ENV)}"
    given = given or os.environ.get(ENV) or None
    if given:
        path = Path(given).expanduser()
        if path.is_file() and path.name.endswith(".tar.gz"):
            target = sources_cache(cache_root) / path.name.removesuffix(".tar.gz")
            return LlamaCpp(build_once(target, lambda folder: unpack_sources(path, folder)), f"{where} (unpacked)")
        for root in (path, path / "vendor" / "llama.cpp"):
            if (root / CONVERTER).is_file():
                return LlamaCpp(root, where)
        raise LorawizError(f"{where}: no {CONVERTER} there.",
                           hint=f"Give a llama.cpp checkout (the folder holding {CONVERTER}) or a "
                                f"llama_cpp_python-*.tar.gz sdist, or leave {FLAG} out to fetch llama-cpp-python's "
                                "sources with pip.")
    version = installed_llama_cpp_python() or PINNED_LLAMA_CPP_PYTHON
    target = sources_cache(cache_root) / f"llama-cpp-python-{version}"
    return LlamaCpp(build_once(target, lambda folder: fetch_sources(version, folder)),
                    f"llama-cpp-python {version} sources")


def fetch_sources(version: str, folder: Path) -> None:
    """Download llama-cpp-python's sdist of `version` with pip and unpack its llama.cpp sources into `folder`."""
    with tempfile.TemporaryDirectory(prefix=".download-", dir=folder.parent) as download:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-python",
                   "--disable-pip-version-check", "--quiet", f"llama-cpp-python=={version}", "-d", download]
        done = subprocess.run(command, capture_output=True, text=True)
        archives = sorted(Path(download).glob("llama_cpp_python-*.tar.gz"))
        if done.returncode != 0 or not archives:
            said = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
            raise LorawizError(f"could not download llama-cpp-python {version}'s sources with pip (for llama.cpp's "
                               f"{CONVERTER}): {said[-1] if said else 'no sdist came back'}",
                               hint=f"Check the network (pip must reach PyPI), or pass {FLAG} DIR: a llama.cpp "
                                    "checkout.")
        unpack_sources(archives[0], folder)


def unpack_sources(archive: Path, folder: Path) -> None:
    """The converter's parts (SOURCE_PARTS) of the llama.cpp tree inside an sdist (vendor/llama.cpp) or a
    llama.cpp source archive, written into `folder`."""
    found = 0
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            parts = Path(member.name).parts
            inside = _tree_path(parts)
            if inside is None or not member.isfile() or ".." in inside.split("/"):
                continue
            if not any(inside == part or (part.endswith("/") and inside.startswith(part)) for part in SOURCE_PARTS):
                continue
            destination = folder / inside
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(tar.extractfile(member).read())
            found += inside == CONVERTER
    if not found:
        raise LorawizError(f"{archive} holds no llama.cpp {CONVERTER}.",
                           hint=f"Give llama-cpp-python's sdist (llama_cpp_python-*.tar.gz) or a llama.cpp checkout "
                                f"to {FLAG}.")
    (folder / MARKER).write_text(json.dumps({"from": str(archive)}) + "\n", encoding="utf-8")


def _tree_path(parts: tuple[str, ...]) -> str | None:
    """A member's path inside the llama.cpp tree: after vendor/llama.cpp in an sdist, after the top folder in a
    llama.cpp archive."""
    for i in range(len(parts) - 1):
        if parts[i] == "vendor" and parts[i + 1] == "llama.cpp":
            return "/".join(parts[i + 2:]) or None
    return "/".join(parts[1:]) if len(parts) > 1 and parts[0].startswith("llama.cpp") else None


# --- running the converter ---------------------------------------------------------------------------------


def run_converter(llama: LlamaCpp, model_dir: Path, outfile: Path, outtype: str, metadata: dict,
                  log: Path) -> None:
    """convert_hf_to_gguf.py MODEL --outfile F --outtype T, with `metadata` (general.* keys) written into the
    file; its output goes to `log`, and a failure becomes one LorawizError (converter_error)."""
    model_dir, outfile, log = model_dir.absolute(), outfile.absolute(), log.absolute()  # it runs in llama.root
    overrides = outfile.with_name(outfile.name + ".metadata.json")
    overrides.write_text(json.dumps(metadata), encoding="utf-8")
    command = [sys.executable, str(llama.converter), str(model_dir), "--outfile", str(outfile), "--outtype", outtype,
               "--metadata", str(overrides)]
    env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"}  # its own gguf-py, matching the script
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=llama.root)
    overrides.unlink(missing_ok=True)
    output = done.stdout + done.stderr
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"$ {' '.join(command)}\n{output}", encoding="utf-8")
    if done.returncode != 0 or not outfile.is_file():
        raise converter_error(output, model_dir, log)


def converter_error(output: str, model: Path | str, log: Path | str) -> LorawizError:
    """The one line a user needs from a failed convert_hf_to_gguf.py run (its output), and the fix."""
    newer = f"Use a newer llama.cpp ({FLAG} DIR: a recent checkout, or a newer llama-cpp-python)"
    arch = re.search(r"Model (\S+) is not supported", output) or re.search(r"Architecture '(\S+)' not supported",
                                                                           output)
    if arch:
        return LorawizError(f"llama.cpp's converter does not support the architecture {arch.group(1)} of {model} "
                            "(config.json \"architectures\"); nothing was written.",
                            hint=f"{newer}, or export a model of an architecture llama.cpp supports.")
    if "BPE pre-tokenizer was not recognized" in output:
        return LorawizError(f"llama.cpp's converter does not recognise the tokenizer of {model}: it knows BPE "
                            "pre-tokenizers by a hash of how they split a test text, and this one is not in its "
                            "list; nothing was written.",
                            hint=f"{newer} that lists it, or register it with llama.cpp's "
                                 "convert_hf_to_gguf_update.py; tokenizers of the models llama.cpp supports (and "
                                 "sentencepiece ones) convert.")
    missing = re.search(r"No module named '([\w.]+)'", output)
    if missing:
        module = missing.group(1)
        package = PACKAGES.get(module.split(".")[0], module.split(".")[0])
        return LorawizError(f"llama.cpp's converter needs the Python module {module}, which is not installed.",
                            hint=f"pip install {package} (or pip install 'lorawiz[gguf]' for all the converter "
                                 "needs).")
    return LorawizError(f"llama.cpp's converter failed on {model}: {_last_error_line(output)}",
                        hint=f"Its full output is in {log}.")


def _last_error_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^(\w+(Error|Exception)\b|ERROR:)", line)]
    return (errors or lines or ["no output"])[-1]


# --- the quantiser -----------------------------------------------------------------------------------------


def find_quantiser(llama: LlamaCpp, quant: str) -> list[str]:
    """The command that quantises (append: input, output, type): llama-quantize in the llama.cpp tree or on PATH,
    else llama-cpp-python's llama_model_quantize."""
    for candidate in (llama.root / "build" / "bin" / QUANTISER_BINARY, llama.root / QUANTISER_BINARY):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return [str(candidate)]
    on_path = shutil.which(QUANTISER_BINARY)
    if on_path:
        return [on_path]
    if importlib.util.find_spec("llama_cpp") is not None:
        return [sys.executable, "-c", QUANTIZE_WITH_LLAMA_CPP_PYTHON]
    raise LorawizError(f"--quant {quant} needs llama.cpp's quantiser, which is not installed (f16, bf16 and q8_0 "
                       "need only the converter).",
                       hint=f"pip install llama-cpp-python (it compiles llama.cpp: a few minutes), or pass {FLAG} "
                            f"DIR with {QUANTISER_BINARY} built there (`cmake -B build && cmake --build build --target "
                            f"{QUANTISER_BINARY}`), or put {QUANTISER_BINARY} on PATH.")


def run_quantiser(command: list[str], source: Path, target: Path, quant: str, log: Path) -> None:
    name, ftype = QUANTISER_TYPES[quant]
    full = [*command, str(source), str(target), str(ftype) if command[0] == sys.executable else name]
    done = subprocess.run(full, capture_output=True, text=True)
    output = done.stdout + done.stderr
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"$ {' '.join(full[:1] + full[-3:])}\n{output}")
    if done.returncode != 0 or not target.is_file():
        raise LorawizError(f"llama.cpp's quantiser failed ({quant}): {_last_error_line(output)}",
                           hint=f"Its full output is in {log}.")
