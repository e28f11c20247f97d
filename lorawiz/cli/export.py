"""`lorawiz export gguf`: a trained adapter or a merged model as one GGUF file (llama.cpp, Ollama, LM Studio)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from lorawiz.cli._funnel import funnel, reporting_outputs

app = typer.Typer(help="Export a model for other runtimes: gguf (llama.cpp, Ollama, LM Studio).", no_args_is_help=True,
                  rich_markup_mode=None)

QUANTS = "f16|bf16|q8_0|q6_k|q5_k_m|q4_k_m"


@app.command("gguf")
@funnel
def gguf_command(
    source: Annotated[str, typer.Argument(metavar="RUN_OR_MERGED", help="A training run or checkpoint (an "
                                          "adapter: merged first), a merged model folder, or builtin:tiny.",
                                          show_default=False)],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="The GGUF file to write (FILE.gguf); the "
                                                "Ollama Modelfile goes beside it (FILE.Modelfile).",
                                                show_default=False)] = None,
    quant: Annotated[str, typer.Option("--quant", metavar=QUANTS, help="The type of the weights: f16, bf16 and q8_0 "
                                       "come from llama.cpp's converter, the k-quants from its quantiser "
                                       "(llama-cpp-python or llama-quantize).")] = "q8_0",
    llama_cpp: Annotated[str | None, typer.Option("--llama-cpp", metavar="DIR", envvar="LLAMA_CPP_DIR",
                                                  help="A llama.cpp checkout (or a llama-cpp-python sdist) to take "
                                                       "convert_hf_to_gguf.py and llama-quantize from [default: the "
                                                       "sources of llama-cpp-python, fetched once with pip].",
                                                  show_default=False)] = None,
    base: Annotated[str | None, typer.Option("--base", metavar="MODEL", help="The base model of an adapter "
                                             "[default: the one named in adapter_config.json].")] = None,
    dtype: Annotated[str, typer.Option("--dtype", metavar="bf16|fp16|fp32", help="Precision of the merge, for an "
                                       "adapter.")] = "bf16",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a previous export (only files lorawiz "
                                            "export wrote).")] = False,
    no_check: Annotated[bool, typer.Option("--no-check", help="Write the file without loading it back and comparing "
                                           "its logits with the model's.")] = False,
) -> None:
    """Export to GGUF with llama.cpp's own converter (and quantiser), plus an Ollama Modelfile.

    An adapter is merged into its base first (in a temporary folder, removed afterwards). The GGUF is
    loaded back and its logits compared with the model's on a few inputs, within a tolerance per type,
    before anything is written. FILE.Modelfile holds FROM ./FILE.gguf, the chat template in Ollama's
    syntax (ChatML, Llama 3) and the stop tokens. Needs pip install 'lorawiz[gguf]'; the k-quants also
    need llama-cpp-python (or a built llama-quantize).

    \b
    Examples:
      lorawiz export gguf outputs/my-run -o exports/my-model.gguf
      lorawiz export gguf merged/my-model -o exports/my-model-q4.gguf --quant q4_k_m
      lorawiz export gguf outputs/my-run -o my-model.gguf --quant f16 --llama-cpp ~/src/llama.cpp
    """
    from lorawiz.console import is_plain, say
    from lorawiz.errors import LorawizError
    from lorawiz.export.gguf import export_gguf, modelfile_for
    from lorawiz.libraries import hide_optional_kernel_warning, quiet_libraries

    if is_plain():  # transformers' GGUF loading draws a tqdm bar of its own; tqdm reads this when imported
        os.environ.setdefault("TQDM_DISABLE", "1")
    hide_optional_kernel_warning()
    quiet_libraries(plain=is_plain())
    if output is None:
        raise LorawizError("no output file.", hint="Pass -o FILE.gguf, e.g. -o exports/my-model.gguf.")
    with reporting_outputs([output, modelfile_for(output)]):
        report = export_gguf(source, output, quant=quant, base=base, dtype=dtype, llama_cpp=llama_cpp,
                             overwrite=overwrite, check=not no_check, say=say)
    if report.max_abs_diff is None:
        say("check skipped (--no-check)")
    else:
        runtime = ("" if report.llama_cpp_diff is None else
                   f", run by llama.cpp {report.llama_cpp_diff:.3g}")
        say(f"check: largest logit difference from the model {report.max_abs_diff:.3g}{runtime} (tolerance "
            f"{report.tolerance:.3g} for {report.quant})")
    size = report.bytes_written
    say(f"wrote {report.output} ({size / 2**30:.2f} GiB)" if size >= 2**30 else
        f"wrote {report.output} ({size / 2**20:.1f} MiB)")
    template = (f"chat template {report.template}" if report.template else
                "chat template left to the GGUF's tokenizer.chat_template")
    say(f"wrote {report.modelfile} ({template}); to use it: ollama create NAME -f {report.modelfile}")
