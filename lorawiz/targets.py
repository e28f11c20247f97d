"""What `merge`, `eval` and `chat` take as TARGET: an adapter folder (with its base), a merged model, or a hub id."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorawiz.errors import LorawizError

DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


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
    import torch

    if name not in DTYPES:
        raise LorawizError(f"--dtype {name}: unknown.", hint=f"Use one of: {', '.join(DTYPES)}.")
    return getattr(torch, DTYPES[name])


def load_tokenizer_for(target: Target) -> Any:
    """The adapter's own tokenizer when it saved one (lorawiz train does), else the model's."""
    from transformers import AutoTokenizer

    from lorawiz.hub import hub_reachable
    from lorawiz.train.dataset import ensure_chat_template

    source = target.path if (Path(target.path) / "tokenizer_config.json").is_file() else (target.base or target.path)
    offline = not Path(source).expanduser().exists() and not hub_reachable()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **({"local_files_only": True} if offline else {}))
    except (OSError, ValueError) as exc:
        where = " (the Hub is unreachable from here, and it is not in the local cache)" if offline else ""
        raise LorawizError(f"cannot load the tokenizer of {source}{where}.",
                           hint="Give a local model folder, or a hub id where the Hub is reachable.") from exc
    ensure_chat_template(tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(target: Target, dtype: str = "bf16", merge: bool = False, device: str | None = None) -> Any:
    """The model to run: base + adapter (optionally merged into the base), or the model itself, in eval mode."""
    from transformers import AutoModelForCausalLM

    from lorawiz.hub import hub_reachable

    path = target.base if target.is_adapter else target.path
    offline = not Path(path).expanduser().exists() and not hub_reachable()  # the cache only, no 20 s of retries
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype(dtype),
                                                     **({"local_files_only": True} if offline else {}))
        if target.is_adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, target.path)
            if merge:
                model = model.merge_and_unload()
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LorawizError(f"cannot load {target.path}: {first}",
                           hint="Check the path, the base model (--base) and your network / HF_TOKEN.") from exc
    if device:
        model = model.to(device)
    return model.eval()


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
