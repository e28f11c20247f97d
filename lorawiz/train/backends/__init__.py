"""Training backends behind one interface: `hf` (transformers + peft + TRL) and `unsloth`."""
