"""report_to and the Hub push settings are checked when the configuration is read (lorawiz/config/integrations.py):
a misspelt or uninstalled tracker, `all`, a push without a repository, an id the Hub would refuse."""

from __future__ import annotations

import pytest

from lorawiz.config import integrations
from lorawiz.config.resolve import resolve_config
from lorawiz.errors import ProblemsError

BASE = {"model_name_or_path": "builtin:tiny", "train_file": "builtin:triage"}


def problems(**flags) -> list[str]:
    with pytest.raises(ProblemsError) as caught:
        resolve_config(None, flags={**BASE, **flags})
    return [str(p) for p in caught.value.problems]


def test_a_misspelt_tracker_is_named_with_the_closest_one():
    found = problems(report_to="tensorbord")
    assert len(found) == 1 and 'report_to tensorbord: not a tracker' in found[0] and 'Did you mean "tensorboard"' \
        in found[0]


def test_a_tracker_whose_package_is_missing_names_the_install(monkeypatch):
    monkeypatch.setitem(integrations.TRACKERS, "wandb", ("lorawiz_test_no_such_module",))
    found = problems(report_to="tensorboard,wandb")
    assert found == ["report_to (--report-to): report_to wandb: the lorawiz_test_no_such_module package is not "
                     "installed. Install it (pip install 'lorawiz[wandb]'), or drop wandb from report_to."]


def test_all_is_refused_and_installed_trackers_and_none_pass():
    assert "name them" in problems(report_to="all")[0]
    assert resolve_config(None, flags={**BASE, "report_to": "tensorboard"}).config.logging.report_to == ["tensorboard"]
    assert resolve_config(None, flags={**BASE, "report_to": "none"}).config.logging.report_to == []


def test_a_push_needs_a_repository_of_the_hubs_shape():
    assert "push_to_hub needs the repository to push to" in problems(push_to_hub=True)[0]
    assert "is not a Hub repository id" in problems(hub_model_id="just a name")[0]
    assert "is not a Hub repository id" in problems(hub_model_id="no-namespace")[0]
    ok = resolve_config(None, flags={**BASE, "push_to_hub": True, "hub_model_id": "you/adapter-1.0"})
    assert ok.config.logging.hub_private_repo is True and ok.config.logging.hub_strategy == "end"


def test_run_name_defaults_to_the_output_folders_name(tmp_path):
    resolved = resolve_config(None, flags={**BASE, "output_dir": str(tmp_path / "my-run")})
    assert resolved.config.logging.run_name == "my-run" and resolved.source("run_name").kind == "derived"
    named = resolve_config(None, flags={**BASE, "output_dir": str(tmp_path / "x"), "run_name": "trial"})
    assert named.config.logging.run_name == "trial"
