"""Classification with a sequence head (`task: classification`, `head: sequence`): the prompt (the chat template up
to the assistant's turn) in, one score per label out, from AutoModelForSequenceClassification with LoRA and the new
score head trained in full.

The rows are the ones `lorawiz train` tokenised for generation (lorawiz.data.tokenize): a row's prompt is its tokens
before the first trained one, its label the trained answer's text. So a head run reads the same data files, cache
and truncation as a generation run, and classifies exactly the text the generation run would have answered.
"""

from __future__ import annotations

from typing import Any

from lorawiz.data.masking import IGNORE_INDEX, prompt_length
from lorawiz.errors import LorawizError

SHOWN = 5  # labels named in a message before "and N more"


def split_rows(batch: dict[str, list], tokenizer: Any) -> dict[str, list]:
    """A batch of tokenised rows -> the prompt's tokens and the answer's text (special tokens left out)."""
    prompts, answers = [], []
    for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True):
        prompts.append(ids[:prompt_length(labels)])
        answers.append([token for token, label in zip(ids, labels, strict=True) if label != IGNORE_INDEX])
    texts = [text.strip() for text in tokenizer.batch_decode(answers, skip_special_tokens=True)]
    return {"input_ids": prompts, "answer": texts}


def data_labels(tokenised: Any, tokenizer: Any) -> list[str]:
    """The training data's distinct answers, sorted: the classes when `labels` is not set."""
    answers = _answers(tokenised.dataset, tokenizer)
    return sorted(set(answers["answer"]))


def fill_labels(resolved: Any, tokenised: Any, tokenizer: Any) -> Any:
    """The configuration with `labels` from the training data when a sequence head runs without them."""
    cfg = resolved.config
    if cfg.data.head != "sequence" or cfg.data.labels is not None:
        return resolved
    from lorawiz.config.layers import derived

    labels = data_labels(tokenised, tokenizer)
    if len(labels) < 2:
        raise LorawizError(f"{cfg.data.train_file}: every answer is {labels[0]!r}: a classifier needs at least two "
                           "classes.", hint="Check the data's answers (lorawiz inspect), or set --labels.")
    return resolved.with_values({"labels": (labels, derived(f"the training data's {len(labels)} distinct answers"))})


def _answers(dataset: Any, tokenizer: Any) -> Any:
    return dataset.map(split_rows, batched=True, fn_kwargs={"tokenizer": tokenizer},
                       remove_columns=dataset.column_names, desc="reading the labels")


def head_dataset(dataset: Any, tokenizer: Any, labels: list[str], name: str) -> Any:
    """Tokenised rows (a training view) -> input_ids of the prompt and the label's index. An answer that is no
    label of the set is refused, with how many rows give it."""
    import collections

    index = {label: i for i, label in enumerate(labels)}
    split = _answers(dataset, tokenizer)
    unknown = collections.Counter(answer for answer in split["answer"] if answer not in index)
    if unknown:
        named = ", ".join(f"{answer!r} ({count} rows)" for answer, count in unknown.most_common(SHOWN))
        more = f" and {len(unknown) - SHOWN} more" if len(unknown) > SHOWN else ""
        raise LorawizError(f"the {name} data answers with labels outside the set {labels}: {named}{more}.",
                           hint="Add them to --labels, or fix those rows (lorawiz inspect shows the answers).")

    def to_label(batch: dict[str, list]) -> dict[str, list]:
        return {"labels": [index[answer] for answer in batch["answer"]]}

    return split.map(to_label, batched=True, remove_columns=["answer"], desc=f"labelling the {name} rows")


def compute_metrics(labels: list[str]) -> Any:
    """The Trainer's compute_metrics for a head: accuracy and macro-F1 over the labels (lorawiz.eval.metrics)."""
    from lorawiz.eval.metrics import classification_report

    def computed(prediction: Any) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        guesses = [labels[int(i)] for i in logits.argmax(-1)]
        truths = [labels[int(i)] for i in prediction.label_ids]
        report = classification_report(truths, guesses, labels)
        return {"accuracy": report.accuracy, "macro_f1": report.macro_f1}

    return computed
