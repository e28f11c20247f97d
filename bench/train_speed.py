"""Training speed and memory: `lorawiz train` with its recommended settings against plain transformers + PEFT.

Usage: python bench/train_speed.py [--model builtin:tiny] [--rows 1024] [--runs 3] [--arms lorawiz baseline]
                                   [--set KEY=VALUE ...] [--out FILE]

Data: chat rows whose prompt and answer lengths are drawn from log-normal distributions (a long right tail, like
real instruction data), written once to bench/.cache. Every arm trains on the same rows, for one epoch, with the
hyperparameters lorawiz's recommender picks for this machine (rank, alpha, dropout, learning rate, batch,
accumulation, warmup, max_seq_length), and the same loss mask (the assistant's answers). Arms:

- lorawiz: `lorawiz train` as a user runs it (run_training, in a fresh process), in-training evaluation and
  checkpoints off so that only training is timed;
- baseline: the tutorial recipe, transformers Trainer + PEFT on rows padded to max_seq_length, in random order,
  with the model computing the logits of every position;
- dynamic: the same Trainer with each batch padded to its longest row (informational: how much of the gain is
  dynamic padding alone).

Each arm runs in its own process, `--runs` times, arms interleaved; we report medians of real (non-padding)
tokens per second of training time, the padding share of the batches, peak memory (RSS on CPU, allocated CUDA
memory on a GPU) and the final evaluation loss, measured for every arm by one function (lorawiz.eval.scoring.mean_loss,
the assistant's answers of the held-out rows). Goal (issue 8, CPU): lorawiz >= 1.5x the baseline's real tokens/s,
final evaluation loss within 2% of the baseline's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache" / "train_speed"
GOALS = {"tokens_per_s_ratio": 1.5, "eval_loss_within": 0.02}
# Prompt and answer lengths in words: log-normal with these medians and shapes (sigma), capped (a long tail as in
# instruction data: the median answer is short, a few are ten times longer).
LENGTHS = {"prompt": (40, 0.8), "answer": (60, 0.9)}
MAX_WORDS = 600
# builtin:tiny has random weights: at the recommender's 2e-4 its LoRA barely moves the loss in one epoch, which
# would make the loss check vacuous. As in the demo (lorawiz.builtin.triage.DEMO_SETTINGS), the head and the
# embeddings are trained too, at 3e-3, so the loss falls far (reported beside the untrained model's).
TINY_SETS = {"learning_rate": 3e-3, "modules_to_save": ["lm_head", "embed_tokens"]}
HYPERPARAMETERS = ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "learning_rate",
                   "per_device_train_batch_size", "gradient_accumulation_steps", "warmup_ratio", "weight_decay",
                   "lr_scheduler_type", "max_seq_length", "max_grad_norm", "seed", "bf16", "fp16",
                   "gradient_checkpointing", "optim", "modules_to_save")


# ---------------------------------------------------------------------------------------------------------
# Data


def make_rows(count: int, seed: int) -> list[dict[str, Any]]:
    from lorawiz.builtin.tiny import generic_sentences

    rng = random.Random(seed)
    sentences = generic_sentences(4000, seed=seed)

    def text(kind: str) -> str:
        median, sigma = LENGTHS[kind]
        words = min(MAX_WORDS, max(3, round(rng.lognormvariate(math.log(median), sigma))))
        out: list[str] = []
        while len(out) < words:
            out += rng.choice(sentences).split()
        return " ".join(out[:words])

    return [{"messages": [{"role": "user", "content": text("prompt")},
                          {"role": "assistant", "content": text("answer")}]} for _ in range(count)]


def write_data(rows: int) -> tuple[Path, Path]:
    folder = CACHE / f"data-{rows}"
    folder.mkdir(parents=True, exist_ok=True)
    train, val = folder / "train.jsonl", folder / "val.jsonl"
    if not train.is_file():
        for path, count, seed in ((train, rows, 1), (val, max(64, rows // 8), 2)):
            tmp = path.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in make_rows(count, seed)))
            os.replace(tmp, path)
    return train, val


# ---------------------------------------------------------------------------------------------------------
# The plan both arms follow


def recommended(model: str, train: Path, sets: dict[str, Any]) -> dict[str, Any]:
    """The values `lorawiz train` would run with on this machine (the recommender's), with --set on top."""
    from lorawiz.config.resolve import resolve_config
    from lorawiz.planning import fill_from_plan, gather, make_plan

    flags = {"model_name_or_path": model, "train_file": str(train), **sets}
    resolved = resolve_config(None, flags=flags, flag_names={name: "bench" for name in flags})
    return fill_from_plan(resolved, make_plan(gather(resolved))).flat()


# ---------------------------------------------------------------------------------------------------------
# Workers (one process each)


class BatchCounter:
    """Wraps a collator: counts the positions the model computes and the real (non-padding) tokens among them."""

    def __init__(self, collate: Any) -> None:
        self.collate = collate
        self.positions = 0
        self.real = 0

    def __call__(self, features: Any) -> Any:
        batch = self.collate(features)
        self.positions += batch["input_ids"].numel()
        mask = batch.get("attention_mask")
        self.real += int(mask.sum()) if mask is not None else batch["input_ids"].numel()
        return batch


def peak_memory() -> int:
    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def final_eval_loss(model: Any, tokenizer: Any, val: Path, max_seq_length: int) -> float:
    from lorawiz.data.rows import read_rows
    from lorawiz.eval.scoring import mean_loss

    model.eval()
    return mean_loss(model, tokenizer, read_rows(val), max_seq_length).loss


def untrained_eval_loss(model: str, val: Path, max_seq_length: int) -> float:
    from lorawiz.models import describe_target, load_model, load_tokenizer_for

    target = describe_target(model)
    return final_eval_loss(load_model(target, "fp32"), load_tokenizer_for(target), val, max_seq_length)


def run_lorawiz(job: dict[str, Any]) -> dict[str, Any]:
    import trl.trainer.sft_trainer as sft

    from lorawiz.config.resolve import resolve_config
    from lorawiz.models import describe_target, load_model, load_tokenizer_for
    from lorawiz.train.runner import TrainRequest, run_training

    counters: list[BatchCounter] = []
    original_init = sft.SFTTrainer.__init__

    def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        counters.append(BatchCounter(self.data_collator))
        self.data_collator = counters[-1]

    sft.SFTTrainer.__init__ = counting_init
    out = Path(job["work"]) / "lorawiz"
    flags = {"model_name_or_path": job["model"], "train_file": job["train"], "output_dir": str(out),
             "val_split": 0.0, "eval_strategy": "no", "save_strategy": "no", "early_stopping_patience": 0,
             "num_train_epochs": 1, "report_to": ["none"], **job["sets"]}
    resolved = resolve_config(None, flags=flags, flag_names={name: "bench" for name in flags})
    run_training(TrainRequest(resolved, plain=True, overwrite=True))
    memory = peak_memory()
    results = json.loads((out / "all_results.json").read_text())
    import yaml

    ran = {k: v for section in yaml.safe_load((out / "lorawiz.yaml").read_text()).values()
           if isinstance(section, dict) for k, v in section.items()}
    target = describe_target(str(out))
    loss = final_eval_loss(load_model(target, "fp32" if not job["gpu"] else "bf16", device=job["device"]),
                           load_tokenizer_for(target), Path(job["val"]), int(ran["max_seq_length"]))
    counter = counters[-1]
    return {"train_seconds": results["train_runtime"], "real_tokens": counter.real, "positions": counter.positions,
            "peak_memory_bytes": memory, "eval_loss": loss, "train_loss": results.get("train_loss"),
            "settings": {k: ran.get(k) for k in HYPERPARAMETERS}}


def run_plain(job: dict[str, Any], dynamic: bool) -> dict[str, Any]:
    """The tutorial recipe: Trainer + PEFT; rows padded to max_seq_length (or to the batch's longest)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments, set_seed

    from lorawiz.builtin import is_builtin, resolve_builtin
    from lorawiz.data.masking import IGNORE_INDEX, ensure_chat_template, tokenize_rows
    from lorawiz.data.rows import read_rows

    v = job["values"]
    set_seed(int(v["seed"]))
    path = resolve_builtin(job["model"]) if is_builtin(job["model"]) else job["model"]
    tokenizer = AutoTokenizer.from_pretrained(path)
    ensure_chat_template(tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = torch.bfloat16 if v.get("bf16") else torch.float16 if v.get("fp16") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    model = get_peft_model(model, LoraConfig(r=int(v["lora_r"]), lora_alpha=int(v["lora_alpha"]),
                                             lora_dropout=float(v["lora_dropout"]),
                                             target_modules=v.get("lora_target_modules") or "all-linear",
                                             modules_to_save=v.get("modules_to_save"), task_type="CAUSAL_LM"))
    max_len = int(v["max_seq_length"])
    examples = tokenize_rows(tokenizer, read_rows(job["train"]), max_len).examples  # the same loss mask as lorawiz
    pad = tokenizer.pad_token_id

    def padded(example: dict[str, list[int]], width: int) -> dict[str, list[int]]:
        extra = width - len(example["input_ids"])
        return {"input_ids": example["input_ids"] + [pad] * extra,
                "attention_mask": [1] * len(example["input_ids"]) + [0] * extra,
                "labels": example["labels"] + [IGNORE_INDEX] * extra}

    if dynamic:
        data = Dataset.from_list(examples)

        def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
            width = max(len(f["input_ids"]) for f in features)
            rows = [padded(f, width) for f in features]
            return {key: torch.tensor([r[key] for r in rows]) for key in rows[0]}
    else:
        data = Dataset.from_list([padded(e, max_len) for e in examples])

        def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
            return {key: torch.tensor([f[key] for f in features]) for key in ("input_ids", "attention_mask",
                                                                             "labels")}

    counter = BatchCounter(collate)
    args = TrainingArguments(
        output_dir=str(Path(job["work"]) / "plain"), num_train_epochs=1,
        per_device_train_batch_size=int(v["per_device_train_batch_size"]),
        gradient_accumulation_steps=int(v["gradient_accumulation_steps"]),
        learning_rate=float(v["learning_rate"]), weight_decay=float(v.get("weight_decay") or 0.0),
        max_grad_norm=float(v.get("max_grad_norm") or 1.0), lr_scheduler_type=v.get("lr_scheduler_type") or "cosine",
        warmup_steps=float(v.get("warmup_ratio") or 0.0), seed=int(v["seed"]), data_seed=int(v["seed"]),
        bf16=bool(v.get("bf16")), fp16=bool(v.get("fp16")), optim=v.get("optim") or "adamw_torch",
        gradient_checkpointing=bool(v.get("gradient_checkpointing")),
        logging_steps=10, eval_strategy="no", save_strategy="no", report_to="none", disable_tqdm=True,
        use_cpu=not job["gpu"], remove_unused_columns=False)
    trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=counter)
    metrics = trainer.train().metrics
    memory = peak_memory()
    loss = final_eval_loss(trainer.model, tokenizer, Path(job["val"]), max_len)
    return {"train_seconds": metrics["train_runtime"], "real_tokens": counter.real, "positions": counter.positions,
            "peak_memory_bytes": memory, "eval_loss": loss, "train_loss": metrics.get("train_loss")}


def worker(arm: str, job_file: str) -> None:
    job = json.loads(Path(job_file).read_text())
    result = run_lorawiz(job) if arm == "lorawiz" else run_plain(job, dynamic=arm == "dynamic")
    Path(job["result"]).write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------------------------
# The parent: runs, medians, ratios


def run_arm(arm: str, job: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        job = {**job, "work": work, "result": str(Path(work) / "result.json")}
        job_file = Path(work) / "job.json"
        job_file.write_text(json.dumps(job))
        started = time.monotonic()
        done = subprocess.run([sys.executable, __file__, "--worker", arm, str(job_file)], capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise SystemExit(f"{arm} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        result = json.loads(Path(job["result"]).read_text())
    result["wall_seconds"] = time.monotonic() - started
    result["tokens_per_s"] = result["real_tokens"] / result["train_seconds"]
    result["padding_share"] = 1 - result["real_tokens"] / result["positions"]
    return result


def check_same_settings(ran: dict[str, Any], planned: dict[str, Any]) -> None:
    """The plain arms copy lorawiz's plan: make sure `lorawiz train` ran exactly that plan."""
    differ = {k: (ran.get(k), planned.get(k)) for k in HYPERPARAMETERS
              if json.dumps(ran.get(k)) != json.dumps(planned.get(k)) and not _same_number(ran.get(k), planned.get(k))}
    if differ:
        raise SystemExit(f"lorawiz ran other settings than the plain arms were given: {differ}")


def _same_number(a: Any, b: Any) -> bool:
    return isinstance(a, int | float) and isinstance(b, int | float) and math.isclose(a, b)


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    summary = {}
    for arm, results in runs.items():
        summary[arm] = {key: statistics.median(r[key] for r in results)
                        for key in ("tokens_per_s", "train_seconds", "padding_share", "peak_memory_bytes",
                                    "eval_loss", "real_tokens")}
    if "baseline" in summary and "lorawiz" in summary:
        base, ours = summary["baseline"], summary["lorawiz"]
        summary["ratios"] = {
            "tokens_per_s": ours["tokens_per_s"] / base["tokens_per_s"],
            "peak_memory": ours["peak_memory_bytes"] / base["peak_memory_bytes"],
            "eval_loss_relative_difference": (ours["eval_loss"] - base["eval_loss"]) / base["eval_loss"],
        }
        summary["goals_met"] = {
            "tokens_per_s_ratio": summary["ratios"]["tokens_per_s"] >= GOALS["tokens_per_s_ratio"],
            "eval_loss_within": abs(summary["ratios"]["eval_loss_relative_difference"]) <= GOALS["eval_loss_within"],
        }
    return summary


def environment() -> dict[str, Any]:
    import importlib.metadata as md

    import torch

    versions = {}
    for name in ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "liger-kernel", "flash-attn"):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[name] = md.version(name)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "gpu": gpu, "versions": versions, "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}


def parse_sets(items: list[str]) -> dict[str, Any]:
    import yaml

    sets = {}
    for item in items:
        key, _, raw = item.partition("=")
        sets[key.strip()] = yaml.safe_load(raw)
    return sets


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:tiny")
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--arms", nargs="+", default=["lorawiz", "baseline"],
                        choices=["lorawiz", "baseline", "dynamic"])
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="A lorawiz setting for every arm (e.g. --set group_by_length=false).")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import torch

    CACHE.mkdir(parents=True, exist_ok=True)
    train, val = write_data(args.rows)
    sets = {**(TINY_SETS if args.model == "builtin:tiny" else {}), **parse_sets(args.sets)}
    values = recommended(args.model, train, sets)
    gpu = torch.cuda.is_available()
    job = {"model": args.model, "train": str(train), "val": str(val), "sets": sets, "gpu": gpu,
           "device": "cuda" if gpu else "cpu", "values": {k: values.get(k) for k in HYPERPARAMETERS}}
    print(f"data: {args.rows} training rows, {train}; settings: "
          + ", ".join(f"{k}={job['values'][k]}" for k in HYPERPARAMETERS if job["values"][k] is not None))
    untrained = untrained_eval_loss(args.model, val, int(values["max_seq_length"]))
    print(f"eval loss of the untrained model: {untrained:.4f}")
    runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in args.arms}
    for run in range(args.runs):
        order = args.arms if run % 2 == 0 else list(reversed(args.arms))  # interleaved: drift hits every arm
        for arm in order:
            result = run_arm(arm, job)
            if arm == "lorawiz":
                check_same_settings(result.pop("settings"), job["values"])
            runs[arm].append(result)
            print(f"run {run + 1} {arm:8} {result['tokens_per_s']:9,.0f} real tok/s  padding "
                  f"{result['padding_share']:5.1%}  train {result['train_seconds']:6.1f} s  peak "
                  f"{result['peak_memory_bytes'] / 2**20:7.0f} MiB  eval loss {result['eval_loss']:.4f}", flush=True)
    summary = summarise(runs)
    for arm in args.arms:
        s = summary[arm]
        print(f"median   {arm:8} {s['tokens_per_s']:9,.0f} real tok/s  padding {s['padding_share']:5.1%}  peak "
              f"{s['peak_memory_bytes'] / 2**20:7.0f} MiB  eval loss {s['eval_loss']:.4f}")
    if "ratios" in summary:
        r = summary["ratios"]
        print(f"lorawiz / baseline: {r['tokens_per_s']:.2f}x real tokens/s (goal >= {GOALS['tokens_per_s_ratio']}x), "
              f"peak memory {r['peak_memory']:.2f}x, eval loss {r['eval_loss_relative_difference']:+.2%} (goal "
              f"within {GOALS['eval_loss_within']:.0%})")
    out = args.out or HERE / "results" / f"train_speed_{'gpu' if gpu else 'cpu'}.json"
    record = {"date": time.strftime("%Y-%m-%d %H:%M"), "environment": environment(), "model": args.model,
              "rows": args.rows, "runs": args.runs, "sets": sets, "settings": job["values"],
              "lengths_words": LENGTHS, "untrained_eval_loss": untrained, "results": runs, "summary": summary,
              "goals": GOALS}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
