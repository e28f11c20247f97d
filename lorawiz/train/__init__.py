"""Fine-tuning runs: the runner, its backends, training callbacks and the run monitor."""
