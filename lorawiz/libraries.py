"""Library chatter during a run: in plain output no progress bars and no info or warning logs from transformers,
datasets and huggingface_hub; in a terminal their warnings stay visible. Libraries are imported here, lazily."""

from __future__ import annotations

import contextlib
import os
import warnings

# Environment variables each library reads at import; an explicit setting by the user wins over ours.
_VERBOSITY_ENV = {"transformers": "TRANSFORMERS_VERBOSITY", "datasets": "DATASETS_VERBOSITY"}
_PROGRESS_ENV = ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS")


def quiet_libraries(plain: bool) -> None:
    """Plain: progress bars off (they are carriage-return noise in a log file) and only errors logged.
    Rich: warnings visible (the default); datasets' map/filter bars off (the plan and dashboard say what happens),
    download and weight-loading bars kept (a first download of a large model takes minutes). The dashboard replaces
    the Trainer's own bar through TrainingArguments(disable_tqdm=True)."""
    if plain:
        for name in _PROGRESS_ENV:  # also reaches subprocesses (dataloader workers, datasets.map with num_proc)
            os.environ.setdefault(name, "1")
    # A user's HF_HUB_DISABLE_PROGRESS_BARS=0 wins; the libraries would warn that they cannot disable the bars.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _configure(plain)


def _configure(plain: bool) -> None:
    with contextlib.suppress(ImportError):
        import transformers.utils.logging as transformers_logging

        if plain:
            transformers_logging.disable_progress_bar()  # also turns off huggingface_hub's bars
        _set_verbosity(transformers_logging, "transformers", plain)
    with contextlib.suppress(ImportError):
        import datasets.utils
        import datasets.utils.logging as datasets_logging

        datasets.utils.disable_progress_bars()
        _set_verbosity(datasets_logging, "datasets", plain)
    if plain:
        with contextlib.suppress(ImportError):
            import huggingface_hub.utils

            huggingface_hub.utils.disable_progress_bars()


def _set_verbosity(module, library: str, plain: bool) -> None:
    if os.environ.get(_VERBOSITY_ENV[library]):
        return
    if plain:
        module.set_verbosity_error()
    else:
        module.set_verbosity_warning()


def hide_optional_kernel_warning() -> None:
    """Warnings at import that say nothing to act on: bitsandbytes' CPU backend that an optional kernels download is
    missing; DeepSpeed (imported by transformers and accelerate when installed) that a machine without a GPU
    computes on its CPU."""
    import logging

    class _Filter(logging.Filter):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

        def filter(self, record: logging.LogRecord) -> bool:
            return self.text not in record.getMessage()

    logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_Filter("kernels-community"))
    logging.getLogger("DeepSpeed").addFilter(_Filter("Setting accelerator to CPU"))
