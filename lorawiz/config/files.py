"""Config files: YAML or JSON, flat (`lora_r: 16`) or sectioned (`lora: {lora_r: 16}`), read with the line of
every key; and the one writer of a resolved configuration (`lorawiz.yaml`, the wizard's config).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lorawiz.config.layers import Layer, Source, unknown_key_message
from lorawiz.config.schema import KNOBS, RENAMED_KEYS, SECTION_OF, SECTIONS
from lorawiz.errors import LorawizError, Problem, ProblemsError


def read_config_file(path: str | Path, kind: str = "file") -> Layer:
    """Load a YAML or JSON config, flat (`lora_r: 16`) or sectioned (`lora: {lora_r: 16}`), into a Layer.

    Unknown keys and keys in the wrong section are kept in `layer.problems`, with the line they are on, so
    that they are reported together with the value problems; an unreadable file raises at once.
    """
    path = Path(path)
    text = _read_text(path)
    data, lines = _parse(path, text)
    label = f"preset {path.stem}" if kind == "preset" else f"file {path}"
    layer = Layer(Source(kind, label, str(path)))
    problems = layer.problems
    problems.extend(_duplicate_keys(path, text))

    def at(key_path: tuple[str, ...]) -> str:
        line = lines.get(key_path)
        return f"{path} line {line}" if line else str(path)

    from lorawiz.config.axolotl import axolotl_values, looks_like_axolotl

    if kind != "preset" and looks_like_axolotl(data) and not any(key in SECTIONS for key in data):
        layer.source = Source("file", f"file {path} (Axolotl)", str(path))
        values, found = axolotl_values(data, lambda key: at((key,)))
        problems.extend(found)
        for name, (value, where) in values.items():
            layer.set(name, value, where)
        return _anchor_paths(layer, path)
    for written, value in data.items():
        written = str(written)
        key = RENAMED_KEYS.get(written, written)
        if key in SECTIONS and isinstance(value, dict):
            for sub, sub_value in value.items():
                where = at((written, str(sub)))
                sub = RENAMED_KEYS.get(str(sub), str(sub))
                if sub in KNOBS and SECTION_OF[sub] == key:
                    _add(layer, sub, sub_value, where, problems)
                elif sub in KNOBS:
                    problems.append(Problem(where, f'"{sub}" belongs in section "{SECTION_OF[sub]}", not "{key}". '
                                                   f"Move it under {SECTION_OF[sub]}:."))
                else:
                    problems.append(Problem(where, unknown_key_message(sub, key)))
        elif key in KNOBS:
            _add(layer, key, value, at((written,)), problems)
        elif key in SECTIONS:
            problems.append(Problem(at((written,)), f'section "{key}" must be a mapping of keys to values.'))
        else:
            problems.append(Problem(at((written,)), unknown_key_message(key, None)))
    return _anchor_paths(layer, path)


def _anchor_paths(layer: Layer, path: Path) -> Layer:
    for name in PATH_KNOBS:
        if isinstance(layer.values.get(name), str):
            layer.values[name] = anchored(layer.values[name], path.parent)
    if isinstance(layer.values.get("datasets"), list):
        layer.values["datasets"] = [{**entry, "path": anchored(entry["path"], path.parent)}
                                    if isinstance(entry, dict) and isinstance(entry.get("path"), str) else entry
                                    for entry in layer.values["datasets"]]
    return layer


# Knobs that hold paths. A relative one in a file means "next to this file" when it is there, so a config runs from
# any folder; otherwise it keeps its usual meaning, relative to the current folder (as flat `--config_file`
# pipelines, run from their repository's root, expect).
PATH_KNOBS = ("model_name_or_path", "train_file", "validation_file", "output_dir", "logging_dir", "cache_dir",
              "dataset_cache_dir")


def anchored(value: str, folder: Path) -> str:
    """`value` as an absolute path when it names something that exists relative to `folder`; anything else
    (`builtin:` names, hub ids, absolute paths, paths not there) unchanged."""
    if not value or value.startswith("builtin:") or "://" in value:
        return value
    expanded = Path(value).expanduser()
    if expanded.is_absolute():
        return value
    local = folder / expanded
    return str(local.resolve()) if local.exists() else value


def _add(layer: Layer, name: str, value: Any, where: str, problems: list[Problem]) -> None:
    if name in layer.values:
        problems.append(Problem(where, f'"{name}" is set twice ({layer.sources[name].where} and here); keep one.'))
        return
    layer.set(name, value, where)


def _read_text(path: Path) -> str:
    if not path.exists():
        raise LorawizError(f"config file {path} not found.",
                           hint="Pass an existing YAML or JSON file, or leave CONFIG out to use the defaults.")
    if path.is_dir():
        raise LorawizError(f"config file {path} is a directory.", hint="Pass a YAML or JSON file.")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise LorawizError(f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason}).",
                           hint="Save the config as UTF-8.") from exc


def _parse(path: Path, text: str) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """Parse JSON or YAML and find the line of each top-level and section key."""
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ProblemsError(f"{path} is not valid JSON",
                                [Problem(f"{path} line {exc.lineno} column {exc.colno}", exc.msg)]) from exc
        lines = _json_key_lines(text, data)
    else:
        data, lines = _load_yaml_with_lines(path, text)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProblemsError(f"{path} is not a valid lorawiz config",
                            [Problem(str(path), f"the top level must be a mapping of keys, not {type(data).__name__}")])
    return data, lines


def _duplicate_keys(path: Path, text: str) -> list[Problem]:
    """A key given twice in one mapping (YAML and JSON parsers keep the last one silently), with both lines."""
    found: list[Problem] = []
    if path.suffix.lower() == ".json":
        def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    at = [text.count("\n", 0, m.start()) + 1
                          for m in re.finditer(r'"' + re.escape(key) + r'"\s*:', text)]
                    where = f"{path} lines {at[0]} and {at[1]}" if len(at) > 1 else str(path)
                    found.append(Problem(where, f'"{key}" is given twice; keep one (JSON would silently take '
                                                "the last)."))
                seen.add(key)
            return dict(pairs)

        json.loads(text, object_pairs_hook=hook)
        return found
    import yaml

    from lorawiz.config import yaml12

    def walk(node: Any) -> None:
        if not isinstance(node, yaml.MappingNode):
            return
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            key, line = str(key_node.value), key_node.start_mark.line + 1
            if key in first:
                found.append(Problem(f"{path} lines {first[key]} and {line}",
                                     f'"{key}" is given twice; keep one (YAML would silently take the last).'))
            first.setdefault(key, line)
            walk(value_node)

    walk(yaml12.compose(text))
    return found


def _json_key_lines(text: str, data: Any) -> dict[tuple[str, ...], int]:
    # json keeps no positions; the first `"key":` after the section's own line is a good-enough anchor.
    lines: dict[tuple[str, ...], int] = {}
    if not isinstance(data, dict):
        return lines

    def line_of(key: str, start: int = 0) -> tuple[int, int]:
        m = re.compile(r'"' + re.escape(key) + r'"\s*:').search(text, start)
        return (text.count("\n", 0, m.start()) + 1, m.start()) if m else (0, start)

    for key, value in data.items():
        line, pos = line_of(str(key))
        if line:
            lines[(str(key),)] = line
        if isinstance(value, dict):
            for sub in value:
                sub_line, _ = line_of(str(sub), pos)
                if sub_line:
                    lines[(str(key), str(sub))] = sub_line
    return lines


def _load_yaml_with_lines(path: Path, text: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    import yaml

    from lorawiz.config import yaml12

    try:
        node = yaml12.compose(text)
        data = yaml12.load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path} line {mark.line + 1} column {mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProblemsError(f"{path} is not valid YAML", [Problem(where, problem)]) from exc
    lines: dict[tuple[str, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            lines[(str(key_node.value),)] = key_node.start_mark.line + 1
            if isinstance(value_node, yaml.MappingNode):
                for sub_key, _ in value_node.value:
                    lines[(str(key_node.value), str(sub_key.value))] = sub_key.start_mark.line + 1
    return data, lines


def write_config_file(path: Path, values: Mapping[str, Any], header: str,
                      comments: Mapping[str, str] | None = None, skip: Mapping[str, bool] | None = None) -> None:
    """A sectioned YAML config that `lorawiz train` reads back, written atomically.

    `comments` puts a comment after a value's line (its source, why); `skip` leaves a value out (the wizard omits
    untouched defaults). Values are written in schema order, one per line.
    """
    from lorawiz.data.writers import atomic_output

    with atomic_output(path, overwrite=True) as handle:
        handle.write(config_text(values, header, comments, skip))


def config_text(values: Mapping[str, Any], header: str, comments: Mapping[str, str] | None = None,
                skip: Mapping[str, bool] | None = None) -> str:
    """The sectioned YAML of `values` (what write_config_file writes)."""
    import yaml

    comments, skip = comments or {}, skip or {}
    lines = header.rstrip("\n").splitlines() + [""]
    for section, knobs in SECTIONS.items():
        body = []
        for knob in knobs:
            if knob.name not in values or skip.get(knob.name):
                continue
            rendered = yaml.safe_dump(values[knob.name], default_flow_style=True, width=10_000)
            rendered = rendered.strip().removesuffix("...").strip()
            comment = comments.get(knob.name)
            body.append(f"  {knob.name}: {rendered}" + (f"  # {comment}" if comment else ""))
        if body:
            lines += [f"{section}:", *body, ""]
    return "\n".join(lines)
