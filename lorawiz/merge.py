"""`lorawiz merge` as a library call: fold a LoRA adapter into its base model, check it, write it atomically.

The base is loaded in 16-bit (or the --dtype given) even when the adapter was trained on a 4-bit base: merging
into quantised weights would round the adapter away. The merge is checked by comparing the logits of the merged
model with those of base + adapter on a few inputs, before anything is written.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lorawiz import __version__
from lorawiz.data.writers import create_temp_folder, normal_permissions
from lorawiz.errors import LorawizError
from lorawiz.models import describe_target, load_model, load_tokenizer_for
from lorawiz.ownership import check_merge_output, hold_lock, merge_lock, write_merge_marker

CHECK_TEXTS = ("The quick brown fox jumps over the lazy dog.", "Explain LoRA in one sentence.",
               "1, 2, 3, 4, 5, 6, 7, 8, 9, 10")
# Tolerance on the largest logit difference, relative to the largest logit: 16-bit sums rounded in another
# order differ by a few units in the last place (bf16 has 8 bits of mantissa, 2^-8 = 0.4%).
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2, "bf16": 4e-2}
DISK_MARGIN = 1.1  # safetensors headers and the tokenizer: a few percent more than the weights


@dataclass
class MergeReport:
    output: Path
    base: str
    dtype: str
    max_abs_diff: float
    tolerance: float
    bytes_written: int
    inputs: int = len(CHECK_TEXTS)


def _weights_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def merge_adapter(adapter_dir: str | Path, output: str | Path, *, base: str | None = None, dtype: str = "bf16",
                  max_shard_size: str = "5GB", overwrite: bool = False,
                  say: Callable[[str], None] = lambda text: None) -> MergeReport:
    """Merge, check and write; -o is a new folder or (overwrite) a previous merge output, never the adapter or a
    training run, and one merge at a time writes it."""
    output = Path(output)
    if dtype not in TOLERANCE:  # the dtypes a merge can be checked in; models.torch_dtype takes more names
        raise LorawizError(f"--dtype {dtype}: unknown.", hint=f"Use one of: {', '.join(TOLERANCE)}.")
    target = describe_target(str(adapter_dir), base)
    if not target.is_adapter:
        raise LorawizError(f"{adapter_dir} is not an adapter folder (no adapter_config.json).",
                           hint="Give the output folder of lorawiz train (or a checkpoint-N folder in it).")
    check_merge_output(output, Path(adapter_dir), overwrite)
    if not output.parent.exists():
        raise LorawizError(f"folder {output.parent} does not exist.", hint=f"Create it: mkdir -p {output.parent}")
    with hold_lock(merge_lock(output), f"-o {output}", "-o", say):
        check_merge_output(output, Path(adapter_dir), overwrite)  # again, now that no other merge can change it
        return _merge(target, output, dtype, max_shard_size, existed=output.exists())


def _merge(target, output: Path, dtype: str, max_shard_size: str, existed: bool) -> MergeReport:
    import torch

    tokenizer = load_tokenizer_for(target)
    model = load_model(target, dtype)
    inputs = tokenizer(list(CHECK_TEXTS), return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = model(**inputs).logits.float()
        merged = model.merge_and_unload()
        got = merged(**inputs).logits.float()
    # a language model's logits per token (padding left out); a sequence head's per row
    mask = inputs["attention_mask"].bool() if expected.dim() == 3 else torch.ones(expected.shape, dtype=torch.bool)
    diff = float((expected - got).abs()[mask].max())
    tolerance = TOLERANCE[dtype] * max(1.0, float(expected[mask].abs().max()))
    if not diff <= tolerance:
        raise LorawizError(f"the merged model disagrees with base + adapter (largest logit difference {diff:.4g}, "
                           f"tolerance {tolerance:.4g}); nothing was written.",
                           hint="Merge in fp32 (--dtype fp32), or check that --base is the model the adapter was "
                                "trained on.")

    need = int(_weights_bytes(merged) * DISK_MARGIN)
    free = shutil.disk_usage(output.parent).free
    if need > free:
        raise LorawizError(f"not enough disk at {output.parent}: the merged model needs {need / 2**30:.1f} GiB, "
                           f"{free / 2**30:.1f} GiB are free.", hint="Free some space or write elsewhere with -o.")
    names: list[str] = []  # the temporary folder's name is known before it exists: Ctrl-C at any moment removes it
    try:
        tmp = create_temp_folder(output, names)
        merged.save_pretrained(tmp, max_shard_size=max_shard_size)
        tokenizer.save_pretrained(tmp)
        written = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
        write_merge_marker(tmp, {"lorawiz": __version__, "adapter": str(target.path), "base": target.base,
                                 "dtype": dtype})
        if output.exists() and not existed:  # another command made it meanwhile: it is not ours to replace
            raise LorawizError(f"{output} appeared while the merge ran; nothing was written.",
                               hint="Pick another -o, or run the merge again.")
        if output.exists():  # --overwrite: the old one goes only once the new one is complete
            aside = output.with_name(f".{output.name}.old")
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(output, aside)
            os.replace(tmp, output)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(tmp, output)
    except BaseException:
        if names:
            shutil.rmtree(names[-1], ignore_errors=True)
        raise
    normal_permissions(output, weights_only=False)  # mkdtemp and safetensors make them owner-only
    return MergeReport(output, target.base, dtype, diff, tolerance, written)

