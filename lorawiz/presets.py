"""Find and load the shipped presets (`presets/*.yaml`).

Search order: each folder in $LORAWIZ_PRESETS (os.pathsep-separated), the copy inside an installed wheel
(`lorawiz/_presets`), then the checkout's top-level `presets/` (editable installs and source trees).
A path to a YAML file works wherever a preset name does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lorawiz.errors import LorawizError

# Scenario presets first (they state intent), then the named configs of `--config_file` pipelines.
SCENARIOS = ("quick", "standard", "production", "memory", "time")
ENV_VAR = "LORAWIZ_PRESETS"


def preset_dirs() -> list[Path]:
    """Folders that may hold presets, in search order (only those that exist)."""
    here = Path(__file__).resolve().parent
    candidates = [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    candidates += [here / "_presets", here.parent / "presets"]
    return [d for d in candidates if d.is_dir()]


def find_presets() -> dict[str, Path]:
    """Every preset name and its file; an earlier folder wins over a later one."""
    found: dict[str, Path] = {}
    for folder in preset_dirs():
        for path in sorted(folder.glob("*.yaml")):
            found.setdefault(path.stem, path)
    order = {name: i for i, name in enumerate(SCENARIOS)}
    return dict(sorted(found.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))


def preset_path(name: str) -> Path:
    """The file of a preset name (or a path to a YAML file); a clear error with a suggestion otherwise."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate
    presets = find_presets()
    if name in presets:
        return presets[name]
    from lorawiz.config.schema import suggest

    guess = suggest(name, presets)
    hint = f'Did you mean "{guess}"? ' if guess else ""
    if not presets:
        raise LorawizError("no presets found.", hint=f"Reinstall lorawiz, or point ${ENV_VAR} at a folder of presets.")
    raise LorawizError(f'unknown preset "{name}".',
                       hint=f"{hint}Available: {', '.join(presets)} (`lorawiz presets` explains each).")


def load_preset(name: str):
    """A preset as a config layer (`lorawiz.config.layers.Layer`)."""
    from lorawiz.config.files import read_config_file

    return read_config_file(preset_path(name), kind="preset")


@dataclass(frozen=True)
class PresetInfo:
    """What the opening comment of a preset says: a summary, when to use it, and the command to run."""

    name: str
    path: Path
    summary: str
    use_when: str
    command: str


def preset_info(name: str) -> PresetInfo:
    """Read the header comment: `# name: summary`, `# Use when: ...`, `# Run: ...`."""
    path = preset_path(name)
    summary = use_when = command = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if text.lower().startswith("use when:"):
            use_when = text.split(":", 1)[1].strip()
        elif text.lower().startswith("run:"):
            command = text.split(":", 1)[1].strip()
        elif not summary and text.startswith(f"{path.stem}:"):
            summary = text.split(":", 1)[1].strip()
        elif use_when and not command and text:
            use_when += " " + text
    return PresetInfo(path.stem, path, summary, use_when, command)
