"""Loading the model that `eval`, `merge`, `chat` and `demo` run, and its tokenizer: TARGET is an adapter folder
(with its base), a merged model or a hub id. Also the one dtype map, and the dtype and device each command runs in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorawiz.errors import LorawizError, first_line

# Short names (--dtype, precision) and torch's own names (the config's bnb_4bit_compute_dtype) -> torch attribute.
DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32",
          "bfloat16": "bfloat16", "float16": "float16", "float32": "float32"}


@dataclass
class Target:
    path: str  # the adapter folder or the model
    base: str | None  # the base model when path is an adapter
    is_adapter: bool


def describe_target(target: str, base: str | None = None) -> Target:
    """Read TARGET: an adapter folder names its base in adapter_config.json (unless --base says otherwise)."""
    from lorawiz.builtin import is_builtin, resolve_builtin

    if is_builtin(target):
        return Target(resolve_builtin(target), None, False)
    folder = Path(target).expanduser()
    config = folder / "adapter_config.json"
    if config.is_file():
        try:
            named = json.loads(config.read_text()).get("base_model_name_or_path")
        except ValueError as exc:
            raise LorawizError(f"{config}: not valid JSON.", hint="Restore the adapter's adapter_config.json.") from exc
        chosen = base or named
        if not chosen:
            raise LorawizError(f"{config} names no base model.", hint="Pass --base MODEL.")
        if is_builtin(chosen):
            chosen = resolve_builtin(chosen)
        return Target(str(folder), chosen, True)
    if target.startswith(("/", ".", "~")) and not folder.exists():
        raise LorawizError(f"{target} not found.", hint="Give an adapter folder (from lorawiz train), a merged model "
                                                        "folder, or a hub id.")
    return Target(target, None, False)


def torch_dtype(name: str) -> Any:
    """The torch dtype for bf16 / fp16 / fp32 (or bfloat16 / float16 / float32); "auto" stays "auto" (the
    checkpoint's own dtype, as transformers reads it)."""
    if name == "auto":
        return "auto"
    if name not in DTYPES:
        raise LorawizError(f"--dtype {name}: unknown.", hint="Use one of: bf16, fp16, fp32.")
    import torch

    return getattr(torch, DTYPES[name])


def load_tokenizer_for(target: Target) -> Any:
    """The adapter's own tokenizer when it saved one (lorawiz train does), else the model's; with a chat template
    (ChatML when it has none) and a pad token."""
    from lorawiz.data.masking import ensure_chat_template
    from lorawiz.data.tokens import load_tokenizer

    source = target.path if (Path(target.path) / "tokenizer_config.json").is_file() else (target.base or target.path)
    tokenizer = load_tokenizer(source)
    ensure_chat_template(tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


LABELS_FILE = "labels.json"  # a sequence-classification adapter's classes, in the order of its scores


def head_labels(target: Target) -> list[str] | None:
    """The classes of a sequence-classification model (an adapter lorawiz trained with `head: sequence`, or such
    an adapter merged), None for a language model. An adapter keeps them in labels.json (else its run's
    lorawiz.yaml); a merged model in its config's id2label."""
    folder = Path(target.path).expanduser()
    if target.is_adapter:
        adapter = json.loads((folder / "adapter_config.json").read_text())
        if adapter.get("task_type") != "SEQ_CLS":
            return None
        for found in (_labels_file(folder), _run_labels(folder)):
            if found:
                return found
        raise LorawizError(f"{folder} is a sequence-classification adapter without its labels.",
                           hint=f"Restore {LABELS_FILE} (lorawiz train writes it), or the run's lorawiz.yaml.")
    config = folder / "config.json"
    if not config.is_file():
        return None
    found = json.loads(config.read_text())
    if not any(name.endswith("ForSequenceClassification") for name in found.get("architectures") or []):
        return None
    id2label = found.get("id2label") or {}
    return [id2label[key] for key in sorted(id2label, key=int)]


def _labels_file(folder: Path) -> list[str] | None:
    path = folder / LABELS_FILE
    return list(json.loads(path.read_text())["labels"]) if path.is_file() else None


def _run_labels(folder: Path) -> list[str] | None:
    labels = run_setting(folder, "data", "labels")
    return list(labels) if labels else None


def run_setting(folder: Path, section: str, key: str) -> Any:
    """A value of the lorawiz.yaml beside an adapter (the run that trained it), or None without that file or key."""
    import yaml

    path = folder / "lorawiz.yaml"
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text()) or {}
    return (data.get(section) or {}).get(key)


def load_model(target: Target, dtype: str = "bf16", merge: bool = False, device: str | None = None) -> Any:
    """The model to run: base + adapter (optionally merged into the base), or the model itself, in eval mode. A
    sequence-classification one (head_labels) loads with its head, labelled, and knows its padding token."""
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from lorawiz.hub import cache_only_unless_local

    path = target.base if target.is_adapter else target.path
    for folder in {Path(path).expanduser(), Path(target.path).expanduser()}:
        check_weight_files(folder)  # a cut copy fails here with its name, not deep in safetensors
    labels = head_labels(target)
    head = {} if labels is None else {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
                                      "label2id": {label: i for i, label in enumerate(labels)}}
    try:
        with cache_only_unless_local(path):  # the cache only, no 20 s of retries
            model = (AutoModelForSequenceClassification if head else AutoModelForCausalLM).from_pretrained(
                path, dtype=torch_dtype(dtype), **head)
            if head and model.config.pad_token_id is None:
                model.config.pad_token_id = load_tokenizer_for(target).pad_token_id
            if target.is_adapter:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, target.path)
                if merge:
                    model = model.merge_and_unload()
    except (OSError, ValueError, SafetensorError) as exc:
        first = first_line(exc)
        raise LorawizError(f"cannot load {target.path}: {first}",
                           hint="Check the path, the base model (--base) and your network / HF_TOKEN.") from exc
    if device:
        model = model.to(device)
    return model.eval()


def check_weight_files(folder: Path) -> None:
    """Every .safetensors file in a local model or adapter folder is whole: its header reads and its tensors end
    within the file (the format: an 8-byte little-endian header length, a JSON header of tensor offsets, the data)."""
    if not folder.is_dir():
        return  # a hub id: the download is checked by huggingface_hub
    for weights in sorted(folder.glob("*.safetensors")):
        size = weights.stat().st_size
        with weights.open("rb") as handle:
            length = int.from_bytes(handle.read(8), "little") if size >= 8 else size
            try:
                header = json.loads(handle.read(length)) if 8 + length <= size else None
            except ValueError:
                header = None
        end = _data_end(header)
        if end is None:
            raise LorawizError(f"{weights} is damaged or incomplete ({size:,} bytes, its header does not read).",
                               hint=_WHOLE_COPY_HINT)
        end += 8 + length
        if size < end:
            raise LorawizError(f"{weights} is incomplete: {size:,} of {end:,} bytes (a copy or save cut short).",
                               hint=_WHOLE_COPY_HINT)


def _data_end(header: Any) -> int | None:
    """Where the last tensor of a safetensors header ends, relative to the data; None for a header that is not one."""
    if not isinstance(header, dict):
        return None
    try:
        return max((int(entry["data_offsets"][1]) for name, entry in header.items() if name != "__metadata__"),
                   default=0)
    except (TypeError, KeyError, IndexError, ValueError):
        return None


_WHOLE_COPY_HINT = ("Copy the folder again, or use a complete checkpoint (the checkpoint-N folders of the "
                    "training run).")


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def eval_dtype_and_device() -> tuple[str, str]:
    """`lorawiz eval`: bf16 on a GPU, fp16 on older GPUs without bf16, fp32 on the CPU."""
    import torch

    device = default_device()
    if device == "cuda":
        return ("bf16" if torch.cuda.is_bf16_supported() else "fp16"), device
    return "fp32", device  # CPU kernels for 16-bit are slow, and fp32 is exact


def chat_dtype_and_device() -> tuple[str, str]:
    """`lorawiz chat`: bf16 on a GPU that has it, else fp32 (older GPUs and the CPU)."""
    import torch

    device = default_device()
    return ("bf16" if device == "cuda" and torch.cuda.is_bf16_supported() else "fp32"), device
