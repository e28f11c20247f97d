"""Quieting the libraries' output (lorawiz/libraries.py)."""

from __future__ import annotations

import os

import pytest

from lorawiz.libraries import quiet_libraries


@pytest.fixture
def restore_library_output(monkeypatch):
    import datasets.utils
    import transformers.utils.logging as transformers_logging

    for name in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY",
                 "DATASETS_VERBOSITY"):
        monkeypatch.delenv(name, raising=False)
    verbosity = transformers_logging.get_verbosity()
    yield
    transformers_logging.enable_progress_bar()
    transformers_logging.set_verbosity(verbosity)
    datasets.utils.enable_progress_bars()
    datasets.utils.logging.set_verbosity_warning()


def test_quiet_libraries_in_plain_output(restore_library_output):
    import datasets.utils
    import transformers.utils.logging as transformers_logging

    quiet_libraries(plain=True)
    assert not transformers_logging.is_progress_bar_enabled()
    assert datasets.utils.are_progress_bars_disabled()
    assert transformers_logging.get_verbosity() == transformers_logging.ERROR
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"

    quiet_libraries(plain=False)
    assert transformers_logging.get_verbosity() == transformers_logging.WARNING
