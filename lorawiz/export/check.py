"""The check of an exported GGUF before it is written: its logits against the model's on a few inputs.

Two readers, when they are there: transformers' GGUF loading (it dequantises every tensor through the gguf package,
so it checks the file's weights, names and layout) always; llama.cpp itself through llama-cpp-python when that is
installed (it checks that the runtime the file is for loads and runs it, with its own kernels).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lorawiz.errors import LorawizError
from lorawiz.merge import CHECK_TEXTS
from lorawiz.models import Target, load_model, load_tokenizer_for

# Tolerance on the largest logit difference, relative to max(1, the largest logit), per type. Measured on the test
# model with rows of 256 (tests/integration/test_export.py, random fp32 weights, the worst case for quantisation:
# no structure to keep), dequantised by transformers / run by llama.cpp: f16 5e-4 / 7e-4, bf16 4e-3 / 6e-3, q8_0
# 1.3e-2 / 1.6e-2, q6_k 4.4e-2 / 5.1e-2, q5_k_m 7.9e-2 / 8.1e-2, q4_k_m 0.18 / 0.18. The tolerances leave 2-20x of
# headroom and stay below the ~1 of a wrong conversion (another model's weights, a mis-permuted attention): the check
# catches a broken file, it does not grade a quantisation.
TOLERANCE = {"f16": 1e-2, "bf16": 4e-2, "q8_0": 6e-2, "q6_k": 0.15, "q5_k_m": 0.25, "q4_k_m": 0.4}
# Run in a child process: a crash in llama.cpp's C code must not take lorawiz down. argv: GGUF, token ids (JSON),
# where to save the logits (.npz, one array per input).
LLAMA_CPP_LOGITS = """
import json, sys
import numpy as np
from llama_cpp import Llama
inputs = json.loads(open(sys.argv[2]).read())
llm = Llama(model_path=sys.argv[1], n_ctx=max(map(len, inputs)) + 8, logits_all=True, n_gpu_layers=0, verbose=False)
out = []
for ids in inputs:
    llm.reset()
    llm.eval(ids)
    out.append(np.array(llm.scores[:len(ids)], dtype=np.float32))
np.savez(sys.argv[3], *out)
llm.close()
"""


def check_gguf(gguf_file: Path, model_dir: Path, quant: str) -> tuple[float, float | None, float]:
    """The largest logit difference of the GGUF from the model (fp32, each input alone, no padding) as
    transformers reads it, and as llama.cpp runs it (None without llama-cpp-python); and the tolerance for
    `quant`, scaled by the largest logit. One model in memory at a time."""
    import gc
    import importlib.util

    import torch

    target = Target(str(model_dir), None, False)
    tokenizer = load_tokenizer_for(target)
    inputs = [tokenizer(text, return_tensors="pt")["input_ids"] for text in CHECK_TEXTS]
    with torch.no_grad():
        model = load_model(target, "fp32")
        expected = [model(input_ids=ids).logits[0].float() for ids in inputs]
        del model
        gc.collect()
        exported = _load_with_transformers(gguf_file)
        got = [exported(input_ids=ids).logits[0].float() for ids in inputs]
        del exported
    scale = max(1.0, max(float(e.abs().max()) for e in expected))
    diff = _largest_difference(expected, got)
    runtime = None
    if importlib.util.find_spec("llama_cpp") is not None:
        runtime = _largest_difference(expected, _llama_cpp_logits(gguf_file, [ids[0].tolist() for ids in inputs]))
    return diff, runtime, TOLERANCE[quant] * scale


def _largest_difference(expected, got) -> float:
    import torch

    worst = 0.0
    for e, g in zip(expected, got, strict=True):
        g = torch.as_tensor(g)
        if g.shape != e.shape:
            raise LorawizError(f"the GGUF's logits have the shape {tuple(g.shape)}, the model's {tuple(e.shape)}; "
                               "nothing was written.", hint="Check that the converter read the right model folder.")
        worst = max(worst, float((e - g).abs().max()))
    return worst


def _load_with_transformers(gguf_file: Path):
    import torch
    from transformers import AutoModelForCausalLM

    try:
        gguf_file = gguf_file.absolute()  # a relative gguf_file is read from the current folder, not the first one
        return AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), gguf_file=str(gguf_file),
                                                    dtype=torch.float32).eval()
    except (ValueError, KeyError, NotImplementedError, RuntimeError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise LorawizError(f"cannot check the GGUF: transformers cannot load it back ({first}); nothing was "
                           "written.", hint="Pass --no-check to write it unchecked (then try it in llama.cpp or "
                                            "Ollama before you share it).") from exc


def _llama_cpp_logits(gguf_file: Path, inputs: list[list[int]]) -> list:
    import numpy as np

    ids_file = gguf_file.with_name(gguf_file.name + ".ids.json")
    logits_file = gguf_file.with_name(gguf_file.name + ".logits.npz")
    ids_file.write_text(json.dumps(inputs), encoding="utf-8")
    try:
        done = subprocess.run([sys.executable, "-c", LLAMA_CPP_LOGITS, str(gguf_file), str(ids_file),
                               str(logits_file)], capture_output=True, text=True)
        if done.returncode != 0 or not logits_file.is_file():
            lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
            raise LorawizError(f"llama.cpp (llama-cpp-python) cannot run the GGUF: "
                               f"{lines[-1] if lines else 'no output'}; nothing was written.",
                               hint="Update llama-cpp-python (pip install -U llama-cpp-python), or pass --no-check "
                                    "to write it unchecked.")
        with np.load(logits_file) as saved:
            return [saved[f"arr_{i}"] for i in range(len(inputs))]
    finally:
        ids_file.unlink(missing_ok=True)
        logits_file.unlink(missing_ok=True)
