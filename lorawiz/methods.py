"""What each training method changes in the plan: the values the recommender picks for preference tuning (DPO)
and the shape of its steps for the memory estimate. Pure: plain data in and out.
"""

from __future__ import annotations

from typing import Any

METHOD_TITLES = {"sft": "supervised fine-tuning", "dpo": "DPO (preference pairs)"}

# The training guide lorawiz follows: "First: SFT with LR 2e-4; then: DPO with LR 5e-5" (LoRA on both).
DPO_LEARNING_RATE = 5e-5
# The DPO paper's beta (Rafailov et al. 2023, section 6) and TRL's DPOConfig default.
DPO_BETA = 0.1


def method_choices(method: str, rows: int | None) -> dict[str, tuple[Any, str]]:
    """The recommender's values a method decides otherwise than SFT: name -> (value, reason); none for sft."""
    if method != "dpo":
        return {}
    return {
        "learning_rate": (DPO_LEARNING_RATE, "DPO after SFT with LoRA: 5e-5, the training guide's rate (a quarter "
                                             "of SFT's 2e-4: the preference loss moves the model fast)"),
        "beta": (DPO_BETA, "0.1, the DPO paper's and TRL's value: how far the tuned model may drift from the "
                           "reference"),
        "lora_dropout": (0.0, "off: DPO compares the policy's log-probabilities with the reference's, and dropout "
                              "would only add noise to that margin (TRL turns dropout off for DPO too)"),
        "num_train_epochs": (1.0, "one pass over the pairs: DPO overfits its preferences quickly (the alignment "
                                  "handbook's DPO recipes train 1 epoch)"),
        "packing": (False, "off: DPO scores each pair's two answers on their own"),
    }


def sequences_per_row(method: str) -> int:
    """Sequences one row puts through the model in a step: a DPO pair is its chosen and its rejected answer, in
    one batch (TRL's DPOTrainer concatenates them)."""
    return 2 if method == "dpo" else 1
