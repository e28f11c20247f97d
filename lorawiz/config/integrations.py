"""Checks of the knobs that reach outside the run: experiment trackers (report_to) and the Hub push.

Made when the configuration is read, so that a misspelt tracker, a tracker whose package is missing or a push
without a repository stops the run before any data is read or model loaded (the Trainer would fail only after the
model loaded, or, for a tracker, at its first log step). Standard library only (a pure module).
"""

from __future__ import annotations

import importlib.util
import re
from typing import Any

# The trackers transformers' Trainer reports to (transformers.integrations.integration_utils
# INTEGRATION_TO_CALLBACK, 5.x) and the modules each needs, as its is_*_available() looks for them.
TRACKERS: dict[str, tuple[str, ...]] = {
    "tensorboard": ("tensorboard",), "wandb": ("wandb",), "mlflow": ("mlflow",), "comet_ml": ("comet_ml",),
    "clearml": ("clearml",), "neptune": ("neptune",), "trackio": ("trackio",), "codecarbon": ("codecarbon",),
    "dagshub": ("dagshub", "mlflow"), "dvclive": ("dvclive",), "swanlab": ("swanlab",), "azure_ml": ("azureml",),
    "flyte": ("flytekit",), "kubeflow": ("kubeflow",),
}
# lorawiz's extras that install a tracker (pyproject.toml [project.optional-dependencies])
EXTRAS = {"wandb": "wandb", "mlflow": "mlflow"}
# the Hub's repository ids: namespace/name, letters, digits, - _ . (huggingface_hub.utils.validate_repo_id)
HUB_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


def module_present(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a broken install: as good as missing
        return False


def missing_modules(tracker: str) -> list[str]:
    """The modules `tracker` needs that this environment lacks."""
    return [name for name in TRACKERS[tracker] if not module_present(name)]


def install_hint(tracker: str) -> str:
    extra = EXTRAS.get(tracker)
    return f"pip install 'lorawiz[{extra}]'" if extra else f"pip install {' '.join(TRACKERS[tracker])}"


def tracking_problems(log: Any, src: Any, problem: Any) -> list[Any]:
    """Each report_to name is a tracker the Trainer knows and whose package is installed."""
    import difflib

    found = []
    for name in log.report_to:
        if name == "all":
            found.append(problem(src("report_to"), "report_to all would report to whichever trackers happen to be "
                                                   "installed; name them, e.g. report_to: [tensorboard, wandb]."))
        elif name not in TRACKERS:
            guess = difflib.get_close_matches(name, list(TRACKERS), n=1, cutoff=0.6)
            found.append(problem(src("report_to"), f"report_to {name}: not a tracker transformers reports to"
                                                   + (f'. Did you mean "{guess[0]}"?' if guess else
                                                      f" (known: {', '.join(TRACKERS)}, or none).")))
        elif missing_modules(name):
            found.append(problem(src("report_to"), f"report_to {name}: the {' and '.join(missing_modules(name))} "
                                                   f"package is not installed. Install it ({install_hint(name)}), "
                                                   f"or drop {name} from report_to."))
    return found


def hub_problems(log: Any, src: Any, problem: Any) -> list[Any]:
    """A push needs a repository, and hub_model_id must be of the Hub's shape (namespace/name)."""
    found = []
    if log.push_to_hub and not log.hub_model_id:
        found.append(problem(src("push_to_hub", "hub_model_id"), "push_to_hub needs the repository to push to: set "
                                                                 "hub_model_id, e.g. --hub-model-id "
                                                                 "your-name/my-adapter."))
    if log.hub_model_id and not HUB_REPO_ID.match(log.hub_model_id):
        found.append(problem(src("hub_model_id"), f"hub_model_id {log.hub_model_id!r} is not a Hub repository id: "
                                                  "use namespace/name (letters, digits, - _ .), e.g. "
                                                  "your-name/my-adapter."))
    return found
