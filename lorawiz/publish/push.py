"""`lorawiz push`: a finished run or a merged model to a Hugging Face Hub repository, in one commit.

huggingface_hub does the work (create_repo, then create_commit with the operations upload_folder would build, so
that the README.md uploaded is the model card made for this repository, not the one on disk). lorawiz chooses
the files: no checkpoint folders, lock files, markers or pickles unless asked, and nothing that looks like a
credential (a token in a text file, a private key) unless asked.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorawiz.errors import LorawizError, first_line
from lorawiz.ownership import CHECKPOINT

# Never uploaded unless asked: lorawiz's own markers and locks, the Trainer's pickled arguments (the Hub flags
# pickles), caches.
SKIPPED = (".lorawiz*", "*.lock", "training_args.bin", "__pycache__", ".cache", ".git", ".DS_Store")
SECRET_NAMES = (".env", ".env.*", "*.pem", "*.key", "id_rsa*", "id_ed25519*", ".netrc", ".git-credentials",
                "credentials", "credentials.*", "*.token", "token")
# Credentials by their published shapes: Hugging Face user tokens (hf_ + 34 letters), AWS access key ids, OpenAI
# and Anthropic keys, GitHub tokens, PEM private keys.
SECRET_PATTERNS = {
    "a Hugging Face token": re.compile(rb"\bhf_[A-Za-z]{34}\b"),
    "an AWS access key": re.compile(rb"\bAKIA[0-9A-Z]{16}\b"),
    "an API key (sk-...)": re.compile(rb"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{32,}"),
    "a GitHub token": re.compile(rb"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
    "a private key": re.compile(rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
}
SCANNED_BYTES = 8 * 2**20  # text files up to this size are read for credentials; weights are not text


@dataclass
class PushReport:
    repo_id: str
    url: str
    commit_url: str
    files: list[str]
    bytes: int
    private: bool | None
    skipped: list[str]


def upload_plan(folder: Path, include_checkpoints: bool = False, include_secrets: bool = False
                ) -> tuple[list[Path], list[str]]:
    """(files to upload, what was left out and why); refuses a folder holding credentials unless asked."""
    files, skipped, secrets = [], [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder)
        parts = rel.parts
        if not include_checkpoints and any(CHECKPOINT.match(part) for part in parts[:-1]):
            if CHECKPOINT.match(parts[0]) and f"{parts[0]}/ (a checkpoint)" not in skipped:
                skipped.append(f"{parts[0]}/ (a checkpoint)")
            continue
        if any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in SKIPPED) or rel.name == "README.md":
            if rel.name != "README.md":
                skipped.append(str(rel))
            continue
        found = _secret_in(path)
        if found and not include_secrets:
            secrets.append(f"{rel} ({found})")
            continue
        files.append(path)
    if secrets:
        raise LorawizError(f"{folder} holds what looks like credentials: {'; '.join(secrets)}. Nothing was pushed.",
                           hint="Remove them from the folder, or pass --include-secrets if they are not secret.")
    return files, skipped


def _secret_in(path: Path) -> str | None:
    if any(fnmatch.fnmatch(path.name, pattern) for pattern in SECRET_NAMES):
        return "a credentials file by its name"
    try:
        if path.stat().st_size > SCANNED_BYTES or path.suffix in (".safetensors", ".bin", ".pt", ".gguf"):
            return None
        content = path.read_bytes()
    except OSError:
        return None
    for name, pattern in SECRET_PATTERNS.items():
        match = pattern.search(content)
        if match:
            line = content.count(b"\n", 0, match.start()) + 1
            return f"{name}, line {line}"
    return None


def check_pushable(folder: Path) -> None:
    """A finished adapter or a merged model: its weights are there."""
    if not folder.is_dir():
        raise LorawizError(f"{folder}: no such folder.", hint="Give the folder of a finished training run, or one "
                                                              "that lorawiz merge wrote.")
    weights = list(folder.glob("adapter_model.*")) + list(folder.glob("model*.safetensors"))
    if not weights:
        hint = ("The run has not finished: push its final folder when training ends, or pass --include-checkpoints."
                if any(CHECKPOINT.match(p.name) for p in folder.iterdir()) else
                "Give the folder of a finished training run, or one that lorawiz merge wrote.")
        raise LorawizError(f"{folder} holds no adapter or model weights (adapter_model.safetensors, "
                           "model.safetensors).", hint=hint)


def check_token(repo_id: str, what: str = "--repo") -> None:
    """Before any upload (and before a training run loads its model): a token is there, and the repo id is one."""
    from huggingface_hub import get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
        if repo_id.count("/") != 1:  # the card's loading code names the repository in full
            raise HFValidationError("it needs the namespace: namespace/name")
    except HFValidationError as exc:
        raise LorawizError(f"{what} {repo_id}: not a Hub repository id ({exc}).",
                           hint="Use namespace/name, e.g. your-name/qwen3-4b-triage-lora.") from exc
    if not get_token():
        raise LorawizError("no Hugging Face token: pushing needs one with write access.",
                           hint="Run `hf auth login`, or set HF_TOKEN.")


def push_folder(folder: str | Path, repo_id: str, *, private: bool = True, include_checkpoints: bool = False,
                include_secrets: bool = False, base_model: str | None = None, revision: str | None = None,
                message: str | None = None, backend: str | None = None, tidy: bool = False,
                say: Callable[[str], None] = lambda text: None) -> PushReport:
    """Create the repository (private unless asked; an existing one keeps its visibility) and upload the folder
    with a model card for it, validated by the Hub, in one commit. `tidy` (the end of a training run): remove from
    the repository this run's lock and pickled arguments, which the Trainer's checkpoint pushes uploaded."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    from lorawiz.publish.card import build_card, check_card

    folder = Path(folder).expanduser()
    check_pushable(folder)
    check_token(repo_id)
    files, skipped = upload_plan(folder, include_checkpoints, include_secrets)
    card = build_card(folder, repo_id=repo_id, base_model=base_model, backend=backend)
    check_card(card)
    api = HfApi()
    try:
        validate_on_hub(card)
    except ValueError as exc:
        raise LorawizError(f"the Hub refused the model card for {repo_id}: {exc}",
                           hint="Fix the folder's lorawiz.yaml, or pass --base-model with the base's Hub id.") from exc
    except Exception as exc:  # noqa: BLE001 - huggingface_hub's errors (HTTP, offline) by version
        raise _hub_error(exc, repo_id) from exc
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision:  # a branch of its own: made from main when it is new
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
        say(f"pushing {len(files) + 1} files to {url}" + (f" (branch {revision})" if revision else "") + " ...")
        operations = [CommitOperationAdd(path_in_repo=path.relative_to(folder).as_posix(), path_or_fileobj=str(path))
                      for path in files]
        operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode()))
        if tidy:
            operations += [CommitOperationDelete(path_in_repo=name) for name in _trainer_leftovers(api, repo_id,
                                                                                                     revision)]
        commit = api.create_commit(repo_id, operations, commit_message=message or f"lorawiz: {folder.name}",
                                   revision=revision, repo_type="model")
    except Exception as exc:  # noqa: BLE001 - huggingface_hub's errors (HTTP, validation, offline) by version
        raise _hub_error(exc, repo_id) from exc
    return PushReport(repo_id, str(url), commit.commit_url, [p.relative_to(folder).as_posix() for p in files]
                      + ["README.md"], sum(p.stat().st_size for p in files), private, skipped)


def _trainer_leftovers(api: Any, repo_id: str, revision: str | None) -> list[str]:
    """lorawiz's own files (its lock, markers) and training_args.bin at the top of the repository: the Trainer's
    checkpoint pushes (hub_strategy every_save and on) upload the whole run folder but checkpoints."""
    names = api.list_repo_files(repo_id, revision=revision, repo_type="model")
    return [name for name in names if "/" not in name and any(fnmatch.fnmatch(name, pattern) for pattern in
                                                               (".lorawiz*", "training_args.bin"))]


def validate_on_hub(card: object) -> None:
    """The Hub's own check of the card's metadata, as ModelCard.validate makes it, but at the endpoint this
    process uses (HF_ENDPOINT): huggingface_hub 1.x's validate always asks huggingface.co."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session, hf_raise_for_status

    response = get_session().post(f"{constants.ENDPOINT.rstrip('/')}/api/validate-yaml",
                                  json={"repoType": "model", "content": str(card)}, headers={"Accept": "text/plain"})
    if response.status_code == 400:
        raise ValueError(f"metadata refused: {response.text}")
    hf_raise_for_status(response)


def push_run(output_dir: Path, log: Any, backend: str, say: Callable[[str], None]) -> PushReport:
    """The end of a training run with push_to_hub: its folder to hub_model_id, as `lorawiz push` would."""
    report = push_folder(output_dir, log.hub_model_id, private=log.hub_private_repo, backend=backend,
                         tidy=log.hub_strategy != "end", say=say)
    for line in describe(report):
        say(line)
    return report


def _hub_error(exc: Exception, repo_id: str) -> LorawizError:
    text = first_line(exc)
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403):
        return LorawizError(f"the Hub refused the push to {repo_id} ({status}): {text}",
                            hint="Use a token with write access to that namespace: `hf auth login`, or HF_TOKEN.")
    return LorawizError(f"pushing to {repo_id} failed: {text}",
                        hint="Check the network (HF_ENDPOINT, HTTPS_PROXY) and run the command again; nothing was "
                             "committed.")


def describe(report: PushReport) -> list[str]:
    """What a push did, for the terminal."""
    lines = [f"pushed {len(report.files)} files ({report.bytes / 2**20:.1f} MiB) to {report.url}",
             f"commit: {report.commit_url}"]
    if report.skipped:
        lines.append(f"left out: {', '.join(report.skipped)}")
    return lines
