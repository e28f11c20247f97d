"""`lorawiz eval` on preference pairs: how the base and the tuned model rank each held-out pair's chosen answer
against its rejected one, and DPO's implicit reward margin of the tuned model over the base. The pairs are
tokenised as training tokenised them (lorawiz.data.pairs) and cut at the run's max_seq_length as TRL's collator
cuts them; an adapter's base is the same model with the adapter off (one copy in memory).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lorawiz.errors import LorawizError
from lorawiz.eval.metrics import preference_scores, reward_scores
from lorawiz.eval.report import EvalReport, ModelResult
from lorawiz.eval.scoring import max_seq_length_for
from lorawiz.models import Target, eval_dtype_and_device, load_model, load_tokenizer_for

NOT_FOR_PAIRS = (("--general-data", "general_data"), ("--lm-eval", "lm_eval"), ("--task", "task"),
                 ("--labels", "labels"), ("--prompt-template", "prompt_template"), ("--min-f1", "min_f1"))
DEFAULT_BETA = 0.1  # TRL's and the DPO paper's, when the run set none (an SFT adapter)


def check_pairs_request(request: Any) -> None:
    """What the evaluation of pairs does not offer (yet): refused, never silently skipped."""
    for flag, name in NOT_FOR_PAIRS:
        if getattr(request, name) is not None:
            raise LorawizError(f"{flag}: {request.data} holds preference pairs, which are scored by the models' "
                               "ranking of each pair, not by this.", hint=f"Drop {flag}, or evaluate on a file of "
                                                                       "conversations.")


def run_pairs_eval(request: Any, target: Target, rows: Sequence[dict], total: int, run_config: Any,
                   progress: Callable[[str], None]) -> EvalReport:
    from lorawiz.data.pairs import encode_pairs

    dtype, device = eval_dtype_and_device()
    progress(f"loading {target.base or target.path}" + (f" with the adapter {target.path}" if target.is_adapter
                                                        else ""))
    model = load_model(target, dtype, device=device)
    tokenizer = load_tokenizer_for(target)
    max_len = max_seq_length_for(run_config, tokenizer, model)
    pairs = encode_pairs(tokenizer, rows)
    compare = target.is_adapter and request.compare_base is not False
    report = EvalReport(target, target.base if compare else None, request.data, len(rows), total, "preference",
                        "the data holds chosen/rejected pairs", [], {}, [])
    logps = {}
    for role in (("base", "fine_tuned") if compare else ("fine_tuned",)):
        progress(f"{report.role_names[role]}: scoring {len(rows):,} pairs")
        if role == "base":
            with model.disable_adapter():
                logps[role] = answer_logps(model, tokenizer, pairs, max_len, request.batch_size)
        else:
            logps[role] = answer_logps(model, tokenizer, pairs, max_len, request.batch_size)
        report.results[role] = ModelResult(preference=preference_scores(*logps[role]))
    if compare:
        beta = getattr(getattr(run_config, "training", None), "beta", None)
        report.rewards = reward_scores(beta or DEFAULT_BETA, logps["fine_tuned"], logps["base"])
        report.notes.append(f"rewards: DPO's implicit reward, beta {beta or DEFAULT_BETA:g} x (log p fine-tuned - "
                            "log p base) of each answer" + ("" if beta else f" (beta {DEFAULT_BETA:g}: the run set "
                                                                             "none)"))
    started = getattr(getattr(run_config, "model", None), "from_adapter", None)
    if compare and started:
        report.notes.append(f"this run trained on from {started}, its DPO reference; the base here is the model "
                            "with no adapter")
    if not compare:
        report.notes.append("no base model to compare with: " + ("--no-compare-base" if request.compare_base is False
                                                                 else f"{target.path} is a full model"))
    return report


def answer_logps(model: Any, tokenizer: Any, pairs: Sequence[tuple[list[int], list[int], list[int]]], max_len: int,
                 batch_size: int) -> tuple[list[float], list[float]]:
    """Each pair's summed log-probability of its chosen and of its rejected answer tokens, prompt + answer cut at
    max_len (TRL's keep_start)."""
    sequences = [(prompt, answer) for prompt, chosen, rejected in pairs for answer in (chosen, rejected)]
    found = []
    for start in range(0, len(sequences), 2 * batch_size):
        found += _batch_logps(model, tokenizer, sequences[start:start + 2 * batch_size], max_len)
    return found[0::2], found[1::2]


def _batch_logps(model: Any, tokenizer: Any, batch: Sequence[tuple[list[int], list[int]]], max_len: int
                 ) -> list[float]:
    import torch
    from trl.trainer.utils import selective_log_softmax

    device = next(model.parameters()).device
    ids = [(prompt + answer)[:max_len] for prompt, answer in batch]
    width = max(len(row) for row in ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    inputs = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    answer = torch.zeros((len(ids), width), dtype=torch.bool)
    for k, ((prompt, _), row) in enumerate(zip(batch, ids, strict=True)):
        inputs[k, :len(row)] = torch.tensor(row)
        mask[k, :len(row)] = 1
        answer[k, len(prompt):len(row)] = True
    with torch.no_grad():
        logits = model(input_ids=inputs.to(device), attention_mask=mask.to(device)).logits[:, :-1]
        per_token = selective_log_softmax(logits.float(), inputs[:, 1:].to(device))
    return (per_token * answer[:, 1:].to(device)).sum(-1).tolist()
