"""One value set in a config file the user keeps (`lorawiz lr-find --write CONFIG`): the line that holds it is
rewritten, or the key added where it belongs, and everything else in the file stays as written (comments, order,
other keys). The edit is checked by reading the file back before it replaces the original, atomically.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from lorawiz.config.files import read_config_file
from lorawiz.config.schema import SECTION_OF, SECTIONS
from lorawiz.errors import LorawizError

_YAML_LINE = re.compile(r"^(?P<key>\s*[^\s:#][^:#]*?\s*:[ \t]*)(?P<value>[^#\n]*?)(?P<comment>[ \t]+#.*)?$")


def set_in_config_file(path: Path, name: str, value: Any, comment: str = "") -> str:
    """Set knob `name` to `value` in the config at `path`; returns what was done, as a sentence's end ("line 12
    changed from 2e-4", "added under training:")."""
    import yaml

    before = read_config_file(path)
    if before.problems:
        raise LorawizError(f"{path} has problems of its own ({before.problems[0].where}: "
                           f"{before.problems[0].message}); it was left as it is.",
                           hint="Fix it first, or write to a new file with --write OTHER.yaml.")
    text = path.read_text(encoding="utf-8")
    is_json = path.suffix.lower() == ".json"
    rendered = json.dumps(value) if is_json else yaml.safe_dump(value).strip().removesuffix("...").strip()
    where = before.sources[name].where if name in before.values else ""
    line = int(where.rsplit(" line ", 1)[1]) if " line " in where else 0
    if line:
        edited, done = _replace_line(text, line, rendered, comment, is_json), f"line {line} changed"
    elif is_json:
        edited, done = _added_json(text, name, value), "added"
    else:
        edited, done = _added_yaml(text, name, rendered, comment)
    _check_and_write(path, edited, before, name, value)
    return done


def _replace_line(text: str, number: int, rendered: str, comment: str, is_json: bool) -> str:
    lines = text.splitlines(keepends=True)
    old = lines[number - 1]
    ending = old[len(old.rstrip("\r\n")):]
    body = old.rstrip("\r\n")
    if is_json:
        new = re.sub(r'(:\s*)([^,}\]\s]+)', lambda m: m.group(1) + rendered, body, count=1)
    else:
        match = _YAML_LINE.match(body)
        new = (match.group("key") + rendered + (f"  # {comment}" if comment else match.group("comment") or "")
               if match else body)
    lines[number - 1] = new + ending
    return "".join(lines)


def _added_yaml(text: str, name: str, rendered: str, comment: str) -> tuple[str, str]:
    import yaml

    data = yaml.safe_load(text) or {}
    entry = f"{name}: {rendered}" + (f"  # {comment}" if comment else "")
    body = text if text.endswith("\n") or not text else text + "\n"
    if not any(key in SECTIONS for key in data):  # flat, or Axolotl's
        return body + entry + "\n", "added at the end"
    section = SECTION_OF[name]
    lines = body.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if re.match(rf"^{section}\s*:\s*(#.*)?$", line.rstrip("\r\n")):
            following = next((ln for ln in lines[index + 1:] if ln.strip() and not ln.lstrip().startswith("#")), "")
            indent = following[:len(following) - len(following.lstrip())] or "  "
            lines.insert(index + 1, indent + entry + "\n")
            return "".join(lines), f"added under {section}:"
    return body + f"{section}:\n  {entry}\n", f"added in a new section {section}:"


def _added_json(text: str, name: str, value: Any) -> str:
    data = json.loads(text)
    section = SECTION_OF[name]
    if any(key in SECTIONS for key in data):
        data.setdefault(section, {})[name] = value
    else:
        data[name] = value
    indent = re.search(r"\n([ \t]+)\S", text)
    return json.dumps(data, indent=indent.group(1) if indent else 2) + "\n"


def _check_and_write(path: Path, edited: str, before: Any, name: str, value: Any) -> None:
    """Read the edited text back as a config: `name` must hold `value` and every other key what it held."""
    import os
    import tempfile

    from lorawiz.data.writers import atomic_output

    handle, probe = tempfile.mkstemp(suffix=path.suffix, dir=path.parent, prefix=f".{path.name}.check-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(edited)
        after = read_config_file(probe)
    finally:
        os.unlink(probe)
    others = {key: held for key, held in before.values.items() if key != name}
    if after.problems or after.values.get(name) != value or {k: v for k, v in after.values.items()
                                                             if k != name} != others:
        raise LorawizError(f"could not set {name} in {path} without changing its other values (its layout is "
                           "one lorawiz does not edit); it was left as it is.",
                           hint=f"Set {name}: {value} there yourself, or write to a new file with --write OTHER.yaml.")
    with atomic_output(path, overwrite=True) as out:
        out.write(edited)
