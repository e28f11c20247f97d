"""`lorawiz eval`: the base and the fine-tuned model measured the same way (run, scoring, metrics, report)."""
