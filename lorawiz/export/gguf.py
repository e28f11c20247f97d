"""`lorawiz export gguf` as a library call: a merged model (or an adapter, merged first) to one GGUF file and an
Ollama Modelfile, through llama.cpp's own converter and quantiser, checked before anything is written.

The check loads the GGUF back (transformers' GGUF loading, which dequantises through the gguf package) and
compares its logits with the model's own on a few inputs, with a tolerance per type. The file and the Modelfile
appear only once checked (temp files in the output folder, then os.replace); an existing one is replaced only
with --overwrite and only when lorawiz export wrote it (general.quantized_by in the GGUF, HEADER in the
Modelfile).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lorawiz import __version__
from lorawiz.data.tokens import load_tokenizer
from lorawiz.data.writers import create_temp_folder
from lorawiz.errors import LorawizError
from lorawiz.export.check import TOLERANCE, check_gguf
from lorawiz.export.llamacpp import (
    CONVERTER_TYPES,
    QUANT_TYPES,
    QUANTISER_TYPES,
    LlamaCpp,
    find_llama_cpp,
    find_quantiser,
    run_converter,
    run_quantiser,
    sources_cache,
)
from lorawiz.export.ollama import HEADER, chat_family, modelfile_text
from lorawiz.merge import merge_adapter
from lorawiz.models import Target, describe_target
from lorawiz.ownership import LOCK, hold_lock, is_training_run

QUANTIZED_BY = f"lorawiz {__version__}"  # general.quantized_by of every GGUF lorawiz writes: its ownership mark


@dataclass
class ExportReport:
    output: Path
    modelfile: Path
    quant: str
    source: str
    merged: bool  # an adapter, merged into its base first
    llama_cpp: str  # where the converter came from
    template: str | None  # the chat family written into the Modelfile, None when left to the GGUF
    max_abs_diff: float | None  # the GGUF dequantised (transformers) vs the model; None: not checked (check=False)
    llama_cpp_diff: float | None  # run by llama.cpp itself (llama-cpp-python); None: not installed or not checked
    tolerance: float
    bytes_written: int


def modelfile_for(output: Path) -> Path:
    return output.with_name(output.name.removesuffix(".gguf") + ".Modelfile")


def gguf_quantized_by(path: Path) -> str | None:
    """general.quantized_by of a GGUF file, None when it has none or does not read as GGUF."""
    from gguf import GGUFReader

    try:
        field = GGUFReader(path).fields.get("general.quantized_by")
    except (OSError, ValueError, KeyError, IndexError):
        return None
    if field is None:
        return None
    return bytes(field.parts[field.data[0]]).decode("utf-8", "replace")


def _written_by_lorawiz(path: Path) -> bool:
    if path.suffix == ".gguf":
        return (gguf_quantized_by(path) or "").startswith("lorawiz ")
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return handle.readline().startswith(HEADER)
    except OSError:
        return False


def check_export_output(output: Path, overwrite: bool) -> None:
    """-o: a new FILE.gguf in an existing folder outside any training run, or (--overwrite) one lorawiz export
    wrote, and its Modelfile likewise."""
    if output.suffix != ".gguf":
        raise LorawizError(f"-o {output}: a GGUF file's name ends with .gguf.",
                           hint=f"Use -o {output.with_suffix('.gguf')}.")
    if output.is_dir():
        raise LorawizError(f"-o {output} is a folder; the export is one file.", hint="Give a file, e.g. -o "
                                                                                     "exports/my-model.gguf.")
    run = next((p for p in output.resolve().parents if is_training_run(p)), None)
    if run is not None:
        raise LorawizError(f"-o {output} is inside the training run {run}; an export never goes into a run.",
                           hint="Write it outside the run, e.g. -o exports/my-model.gguf.")
    if not output.parent.is_dir():
        raise LorawizError(f"folder {output.parent} does not exist.", hint=f"Create it: mkdir -p {output.parent}")
    for path in (output, modelfile_for(output)):
        if not path.exists():
            continue
        if not overwrite:
            raise LorawizError(f"{path} already exists.",
                               hint="Pick another -o, or pass --overwrite to replace a previous export.")
        if path.is_dir() or not _written_by_lorawiz(path):
            raise LorawizError(f"{path} was not written by lorawiz export; --overwrite replaces only its own files.",
                               hint="Move it away, or pick another -o.")


def export_gguf(source: str | Path, output: str | Path, *, quant: str = "q8_0", base: str | None = None,
                dtype: str = "bf16", llama_cpp: str | Path | None = None, overwrite: bool = False,
                check: bool = True, say: Callable[[str], None] = lambda text: None) -> ExportReport:
    """Merge (an adapter), convert, quantise (k-quants), check, then write FILE.gguf and FILE.Modelfile."""
    output = Path(output)
    if quant not in QUANT_TYPES:
        raise LorawizError(f"--quant {quant}: unknown.", hint=f"Use one of: {', '.join(QUANT_TYPES)}.")
    if importlib.util.find_spec("gguf") is None:
        raise LorawizError("lorawiz export gguf needs the gguf package (to read and check the file).",
                           hint="pip install 'lorawiz[gguf]'")
    target = describe_target(str(source), base)
    if not target.is_adapter and not (Path(target.path) / "config.json").is_file():
        raise LorawizError(f"{source} is not an adapter or a model folder (no adapter_config.json or config.json).",
                           hint="Give a training run (lorawiz train's output), a merged model folder or builtin:tiny; "
                                "download a hub model first (`hf download ID --local-dir DIR`).")
    check_export_output(output, overwrite)
    llama = find_llama_cpp(llama_cpp)
    quantiser = find_quantiser(llama, quant) if quant in QUANTISER_TYPES else None  # refused before any work
    lock = output.parent / f".{output.name}{LOCK}"
    with hold_lock(lock, f"-o {output}", "-o", say):
        check_export_output(output, overwrite)  # again, now that no other export can change it
        existed = {path: path.exists() for path in (output, modelfile_for(output))}
        # absolute: the converter runs in the llama.cpp folder, and transformers would read a relative gguf_file
        # from the current folder (where a previous export of that name may lie)
        names: list[str] = []  # the temporary folder's name is known before it exists: Ctrl-C removes it
        try:
            tmp = create_temp_folder(output.absolute(), names, suffix=".tmp")
            return _export(target, str(source), output, tmp, quant, dtype, llama, quantiser, check, existed, say)
        finally:
            if names:
                shutil.rmtree(names[-1], ignore_errors=True)


def _export(target: Target, source: str, output: Path, tmp: Path, quant: str, dtype: str, llama: LlamaCpp,
            quantiser: list[str] | None, check: bool, existed: dict[Path, bool],
            say: Callable[[str], None]) -> ExportReport:
    model_dir = Path(target.path)
    if target.is_adapter:
        say(f"merging {source} into {target.base} ({dtype}) first")
        model_dir = merge_adapter(target.path, tmp / "merged", base=target.base, dtype=dtype, say=say).output
    log = sources_cache() / "logs" / f"{output.name}.log"  # the last export of that name: what failed there
    converted = tmp / (output.name if quantiser is None else f"converted-{_float_type(model_dir)}.gguf")
    say(f"converting with llama.cpp's convert_hf_to_gguf.py ({llama.origin})")
    run_converter(llama, model_dir, converted, quant if quant in CONVERTER_TYPES else _float_type(model_dir),
                  {"general.quantized_by": QUANTIZED_BY}, log)
    written = converted
    if quantiser is not None:
        say(f"quantising to {quant} with llama.cpp's quantiser")
        written = tmp / output.name
        run_quantiser(quantiser, converted, written, quant, log)
        converted.unlink()
    diff = runtime = None
    tolerance = TOLERANCE[quant]
    if check:
        say("checking: the GGUF's logits against the model's")
        diff, runtime, tolerance = check_gguf(written, model_dir, quant)
    worst = max((d for d in (diff, runtime) if d is not None), default=None)
    if worst is not None and not worst <= tolerance:
        raise LorawizError(f"the GGUF disagrees with the model (largest logit difference {worst:.4g}, tolerance "
                           f"{tolerance:.4g} for {quant}); nothing was written.",
                           hint="Try a wider type (--quant q8_0 or f16); if f16 fails too, the converter mishandles "
                                f"this model: report it to llama.cpp with the log {log}.")
    tokenizer = load_tokenizer(str(model_dir))  # as saved: the template the GGUF embeds, none added
    jinja = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None
    modelfile = tmp / modelfile_for(output).name
    modelfile.write_text(modelfile_text(output.name, jinja, [tokenizer.eos_token or ""]), encoding="utf-8")
    for path in (output, modelfile_for(output)):
        if path.exists() and not existed[path]:  # another command made it meanwhile: it is not ours to replace
            raise LorawizError(f"{path} appeared while the export ran; nothing was written.",
                               hint="Pick another -o, or run the export again.")
    size = written.stat().st_size
    os.replace(written, output)
    os.replace(modelfile, modelfile_for(output))
    family = chat_family(jinja)
    return ExportReport(output, modelfile_for(output), quant, source, target.is_adapter, llama.origin,
                        family.name if family else None, diff, runtime, tolerance, size)


def _float_type(model_dir: Path) -> str:
    """The 16-bit type the quantiser starts from: bf16 for a bf16 model (its range), else f16."""
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        return "f16"
    return "bf16" if "bfloat16" in (config.get("dtype"), config.get("torch_dtype")) else "f16"

