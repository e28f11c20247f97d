"""What each training method changes in the plan: the values the recommender picks for preference tuning (DPO, KTO)
and the shape of its steps for the memory and time estimates. Pure: plain data in and out.
"""

from __future__ import annotations

from typing import Any

PREFERENCE_METHODS = ("dpo", "kto", "orpo")

# The training guide lorawiz follows: "First: SFT with LR 2e-4; then: DPO with LR 5e-5" (LoRA on both).
DPO_LEARNING_RATE = 5e-5
# The DPO paper's beta (Rafailov et al. 2023, section 6), TRL's DPOConfig and KTOConfig default.
DPO_BETA = 0.1


def method_choices(method: str, rows: int | None) -> dict[str, tuple[Any, str]]:
    """The recommender's values a method decides otherwise than SFT: name -> (value, reason); none for sft."""
    if method not in PREFERENCE_METHODS:
        return {}
    name = method.upper()
    choices = {
        "learning_rate": (DPO_LEARNING_RATE, f"{name} after SFT with LoRA: 5e-5, the training guide's rate for "
                                             "preference tuning (a quarter of SFT's 2e-4: the preference loss moves "
                                             "the model fast)"),
        "beta": (DPO_BETA, f"0.1, the DPO paper's and TRL's {name} value: how far the tuned model may drift from "
                           "the reference"),
        "lora_dropout": (0.0, f"off: {name} compares the policy's log-probabilities with the reference's, and "
                              "dropout would only add noise to that margin (TRL turns dropout off for it too)"),
        "num_train_epochs": (1.0, f"one pass: {name} overfits its preferences quickly (the alignment handbook's "
                                  "preference recipes train 1 epoch)"),
        "packing": (False, f"off: {name} scores each answer on its own"),
    }
    if method == "orpo":  # one stage from the base: its SFT term learns the answers, so SFT's epochs
        del choices["num_train_epochs"]
        choices["learning_rate"] = (DPO_LEARNING_RATE, "ORPO with LoRA: 5e-5, the rate lorawiz plans for preference "
                                                       "tuning (TRL's ORPOConfig default, 1e-6, is a full "
                                                       "fine-tuning rate); no LoRA rate was measured for ORPO here")
        choices["beta"] = (DPO_BETA, "0.1, the ORPO paper's lambda and TRL's default: the weight of the odds-ratio "
                                     "term against the SFT loss")
        choices["lora_dropout"] = (0.0, "off: TRL's ORPOTrainer turns dropout off too")
        choices["remove_unused_columns"] = (False, "off: ORPO's collator reads columns the model does not take "
                                                   "(TRL's ORPOTrainer turns it off)")
    if method == "kto":
        choices["group_by_length"] = (False, "off: KTO's KL term pairs each answer with its micro-batch neighbours' "
                                             "in a fixed order (TRL samples KTO data in sequence); lorawiz shuffles "
                                             "the rows once, with the seed")
    return choices


def sequences_per_row(method: str) -> int:
    """Sequences one row puts through the model with gradients in a step: a DPO pair is its chosen and its rejected
    answer, in one batch (TRL's DPOTrainer and ORPOTrainer concatenate them)."""
    return 2 if method in ("dpo", "orpo") else 1


def rows_per_example(method: str) -> int:
    """Training rows one row of the data makes: KTO learns each answer of a pair on its own, desirable or not (TRL's
    unpair_preference_dataset), so a pair is two rows."""
    return 2 if method == "kto" else 1


def forward_passes_without_gradients(method: str) -> int:
    """Forward passes over a row's tokens that train nothing: DPO's reference; KTO's reference, and its KL term's
    mismatched answer through the policy and the reference (TRL's KTOTrainer); ORPO has no reference."""
    return {"dpo": 1, "kto": 3}.get(method, 0)
