"""`builtin:tiny`: a small random-weight Llama with a locally trained tokenizer, built on first use and cached.

Everything is fixed (config, seed, tokenizer corpus), so every build gives the same weights; it needs no download
and trains on a CPU in seconds, which makes it the model of `lorawiz demo` and of the tests.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lorawiz.builtin.cache import default_cache_root
from lorawiz.builtin.triage import CATEGORIES, SYSTEM_PROMPT, triage_rows

TINY_VERSION = "1"  # bump when the build code changes in a way the digest of config and corpus cannot see
MODEL_SEED = 0
TOKENIZER_VOCAB = 2048  # the triage reports and the generic text fill ~2k merges; each category stays one token
MARKER = "lorawiz-build.json"  # written last: a folder without it is not a finished build
STALE_TEMP_S = 3600  # a temp build folder this old belongs to a build that was killed

# LlamaConfig kwargs. Small enough to train in seconds on 2 CPU cores; GQA (2 KV heads) like the real models.
TINY_CONFIG: dict[str, Any] = {
    "vocab_size": TOKENIZER_VOCAB,
    "hidden_size": 128,
    "intermediate_size": 384,  # a multiple of 64: bitsandbytes packs 4-bit weights for the CPU in blocks of 64
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
    "rms_norm_eps": 1e-5,
    "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
    "tie_word_embeddings": False,
    "initializer_range": 0.02,
    # build_tokenizer puts its special tokens first: <|endoftext|> = 0, <|im_start|> = 1, <|im_end|> = 2.
    "pad_token_id": 0,
    "bos_token_id": None,
    "eos_token_id": 2,
}

_GENERIC_TEXT = (
    "the of and to in is was for on that with as it by at from this be are or an not have has had but which were "
    "can all their there been if more when will would who so no one about up out them some could what into time "
    "only other new first two most also over may after any these such where our through many then well much before "
    "must between because each those under very three while both same here during without again last another "
    "number water people work part place year day week month hour minute morning night city town road house home "
    "school hospital office report data model answer question train learn test result value file line error help "
    "please thank you we they he she his her its my your yes need want make take give find tell ask use show try "
    "call keep start stop open close read write send check change move turn run walk drive stand sit wait hold "
    "good bad small large long short high low early late fast slow hot cold old young right left near far next "
    "red blue green black white light dark clear safe quick simple important possible different public local "
    "customer order price payment account password email phone message service support problem issue ticket "
    "refund delivery product review weather rain wind sun car bus train street river bridge building floor room"
)


def generic_sentences(count: int = 1500, seed: int = MODEL_SEED) -> list[str]:
    """Plain English-like sentences, so that text outside the triage domain still tokenises into words."""
    rng = random.Random(seed)
    vocabulary = _GENERIC_TEXT.split()
    out = []
    for _ in range(count):
        words = [rng.choice(vocabulary) for _ in range(rng.randint(5, 16))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 2025)))
        out.append(f"{words[0].capitalize()} {' '.join(words[1:])}{rng.choice('.?!.,')}")
    return out


def tokenizer_corpus() -> list[str]:
    """What the tokenizer learns from: the triage training rows, role names, labels and generic sentences."""
    corpus = [SYSTEM_PROMPT, "system", "user", "assistant"]
    for row in triage_rows("train"):
        corpus.extend(message["content"] for message in row["messages"][1:])
    corpus.extend(CATEGORIES)
    corpus.extend(generic_sentences())
    return corpus


def build_digest(corpus: list[str]) -> str:
    """A short hash of everything a build depends on, so a changed config or corpus gets a new folder."""
    payload = json.dumps({"version": TINY_VERSION, "config": TINY_CONFIG, "seed": MODEL_SEED,
                          "vocab": TOKENIZER_VOCAB, "corpus": corpus}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


@functools.cache
def _corpus_and_digest() -> tuple[tuple[str, ...], str]:
    """Made from constants of this module, so once per process (every path lookup of builtin:tiny needs it)."""
    corpus = tuple(tokenizer_corpus())
    return corpus, build_digest(list(corpus))


def tiny_model_dir(cache_root: str | Path | None = None) -> Path:
    """The folder of builtin:tiny (config, weights, tokenizer), building it on first use."""
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    corpus, digest = _corpus_and_digest()
    target = root / f"tiny-llama-v{TINY_VERSION}-{digest}"
    return build_once(target, lambda folder: _build(folder, corpus, digest))


def _build(folder: Path, corpus: tuple[str, ...], digest: str) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    from lorawiz.builtin.tokenizer import build_tokenizer

    tokenizer = build_tokenizer(corpus, folder, vocab_size=TOKENIZER_VOCAB,
                                model_max_length=TINY_CONFIG["max_position_embeddings"])
    if len(tokenizer) > TINY_CONFIG["vocab_size"]:
        raise RuntimeError(f"tokenizer has {len(tokenizer)} tokens, more than vocab_size {TINY_CONFIG['vocab_size']}")
    # fork_rng: a first build must not shift the caller's random stream (a cached run would then differ).
    # Init on the CPU: the same weights whatever accelerator or default device is set.
    with torch.random.fork_rng(), torch.device("cpu"):
        torch.manual_seed(MODEL_SEED)
        model = LlamaForCausalLM(LlamaConfig(**TINY_CONFIG))
    model.generation_config.pad_token_id = TINY_CONFIG["pad_token_id"]
    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "Writing model shards" bar for a 4 MB file is noise in the demo
    try:
        model.save_pretrained(str(folder))
    finally:
        if shown:
            hf_logging.enable_progress_bar()
    marker = {"name": "builtin:tiny", "version": TINY_VERSION, "digest": digest, "seed": MODEL_SEED,
              "parameters": sum(p.numel() for p in model.parameters()), "built": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (folder / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


def build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """Return `target` if it holds a finished build; otherwise build into a temp folder beside it and rename.

    The rename is atomic, so `target` is either absent or complete: an interrupted build leaves only a temp folder
    (swept once stale), and when two builds race the loser drops its copy and uses the winner's.
    """
    if (target / MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale_temps(target)
    # A folder without the marker was not made by build_once (which renames only finished builds into place): move
    # it out of the way. The marker is checked again in case a racing build has just finished.
    if target.exists() and not (target / MARKER).is_file():
        _remove_aside(target)
    temp = _make_temp_dir(target)
    try:
        build(temp)
        try:
            os.rename(temp, target)
        except OSError:
            if not (target / MARKER).is_file():
                raise
            shutil.rmtree(temp, ignore_errors=True)  # another process finished first; its build is identical
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return target


def _make_temp_dir(target: Path) -> Path:
    """A new folder beside `target`, with the permissions the umask gives (mkdtemp's would be owner-only)."""
    for _ in range(100):
        temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            temp.mkdir(mode=0o777)
            return temp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target}")


def _remove_aside(target: Path) -> None:
    aside = target.with_name(f".{target.name}.{secrets.token_hex(4)}.old.tmp")
    try:
        os.rename(target, aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def _sweep_stale_temps(target: Path) -> None:
    cutoff = time.time() - STALE_TEMP_S
    for temp in target.parent.glob(f".{target.name}.*.tmp"):
        try:
            if temp.stat().st_mtime < cutoff:
                shutil.rmtree(temp, ignore_errors=True)
        except FileNotFoundError:
            continue
