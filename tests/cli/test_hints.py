"""Every hint is runnable: each `lorawiz COMMAND ...` and each `--flag` that an error message or a hint names
exists in the real command line (lorawiz.cli.app, read through typer.main.get_command and each command's
`.params`).

The texts come from the source (AST): the `hint=` argument of every call, `hint = ...` assignments, the text
arguments of LorawizError / ProblemsError / Problem / RowProblem, and the resume command a TrainRequest's argv
becomes (`lorawiz ARGV --resume auto`); f-strings keep their literal parts. A flag named after `lorawiz COMMAND`
must belong to COMMAND. A flag named alone must belong to the commands that reach the function raising it most
directly (fewest calls from the command's function: `format` and `inspect` both reach `resolve_shape` in two), so
that a hint in shared library code does not name a flag only one of its commands has. A message that opens with
a flag (`--dtype fp64: unknown.`) is raised on a value given with it, so that flag (there and in the message's
hint) needs only some command that reaches the line to have it.
"""

from __future__ import annotations

import ast
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main

from lorawiz.cli import app

PACKAGE = Path(__file__).resolve().parents[2] / "lorawiz"
HOLE = "X"  # stands for an f-string's {value}
ERROR_CLASSES = {"Problem"}  # plus every exception class defined in lorawiz (found below)
COMMAND_REF = re.compile(r"(?<![\w./\[-])lorawiz ([a-z][a-z-]*)")
LONG_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]*")
CLOSERS = ".;,)`:"  # a token ending in one of these ends the command line it belongs to
ECHO = re.compile(r"(--[a-z][\w-]*)[ :]")  # "--dtype fp64: unknown.": a message about the value given with a flag


@dataclass(frozen=True)
class Text:
    module: str
    function: str | None  # the top-level function or Class.method holding it; None at module level
    line: int
    kind: str  # hint, message or resume
    text: str
    echo: str | None = None  # the flag whose given value the error is about ("--dtype fp64: unknown.")

    def __str__(self) -> str:
        return f"{self.module.replace('.', '/')}.py:{self.line} ({self.kind}) {self.text!r}"


# --- the command line as click sees it -------------------------------------------------------------------


def _commands() -> tuple[dict[str, Any], set[str]]:
    """Every command by its words ("train", "config show"), and the root's own options."""
    root = typer.main.get_command(app)
    found: dict[str, Any] = {}

    def walk(group: Any, prefix: str) -> None:
        for name, command in getattr(group, "commands", {}).items():
            found[f"{prefix}{name}"] = command
            walk(command, f"{prefix}{name} ")

    walk(root, "")
    return found, _options(root)


def _options(command: Any) -> set[str]:
    names = {"--help", "-h"}
    for param in command.params:
        if param.param_type_name == "option":  # typer bundles its own click: no isinstance
            names.update(param.opts, param.secondary_opts)
    return names


COMMANDS, ROOT_OPTIONS = _commands()
OPTIONS = {name: _options(command) for name, command in COMMANDS.items()}


def _entry(command: Any) -> tuple[str, str] | None:
    callback = command.callback
    while callback is not None and hasattr(callback, "__wrapped__"):  # lorawiz.cli._funnel.funnel
        callback = callback.__wrapped__
    return (callback.__module__, callback.__qualname__) if callback is not None else None


# --- the source: modules, functions, what each one refers to ---------------------------------------------


def _parse() -> dict[str, ast.Module]:
    trees = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        trees[name] = ast.parse(path.read_text(encoding="utf-8"))
    return trees


TREES = _parse()


def _units(tree: ast.Module) -> list[tuple[str, ast.AST]]:
    """Top-level functions and class methods with their qualified names (nested defs stay in their parent)."""
    units = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            units.append((node.name, node))
        elif isinstance(node, ast.ClassDef):
            units.extend((f"{node.name}.{item.name}", item) for item in node.body
                         if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return units


def _exception_classes() -> set[str]:
    bases = {node.name: {b.id for b in node.bases if isinstance(b, ast.Name)}
             for tree in TREES.values() for node in tree.body if isinstance(node, ast.ClassDef)}
    found = {"Exception"}
    changed = True
    while changed:
        changed = False
        for name, parents in bases.items():
            if name not in found and parents & found:
                found.add(name)
                changed = True
    return found - {"Exception"}


ERROR_CLASSES |= _exception_classes()


def _names_in_scope(module: str, body: ast.AST) -> dict[str, tuple[str, str | None]]:
    """Names bound by imports in `body` (a module or a function): name -> (module, object or None for a module)."""
    names: dict[str, tuple[str, str | None]] = {}
    for node in ast.walk(body):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lorawiz"):
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                names[alias.asname or alias.name] = (target, None) if target in TREES else (node.module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("lorawiz") and alias.asname:
                    names[alias.asname] = (alias.name, None)
    return names


def _call_graph() -> dict[tuple[str, str], set[tuple[str, str]]]:
    """(module, function) -> the lorawiz functions it refers to: called, or passed on as a value. A class
    named stands for all of its methods (whoever builds one may call any of them)."""
    units = {module: dict(_units(tree)) for module, tree in TREES.items()}

    def targets(module: str, name: str) -> set[tuple[str, str]]:
        if name in units.get(module, {}):
            return {(module, name)}
        return {(module, qual) for qual in units.get(module, {}) if qual.startswith(f"{name}.")}

    graph: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for module, tree in TREES.items():
        module_scope = _names_in_scope(module, tree)
        for qual, node in units[module].items():
            scope = {**module_scope, **_names_in_scope(module, node)}
            cls = qual.split(".")[0] if "." in qual else None
            edges: set[tuple[str, str]] = set()
            for ref in ast.walk(node):
                if isinstance(ref, ast.Name):
                    where, obj = scope.get(ref.id, (module, ref.id))
                    if obj is not None:
                        edges |= targets(where, obj)
                elif isinstance(ref, ast.Attribute) and isinstance(ref.value, ast.Name):
                    if ref.value.id == "self" and cls:
                        edges |= targets(module, f"{cls}.{ref.attr}")
                    elif ref.value.id in scope and scope[ref.value.id][1] is None:
                        edges |= targets(scope[ref.value.id][0], ref.attr)
            graph[(module, qual)] = edges - {(module, qual)}
    return graph


def _reaching_commands() -> tuple[dict[tuple[str, str], set[str]], dict[tuple[str, str], set[str]]]:
    """Each function -> the commands that reach it in the fewest calls, and all the commands that reach it."""
    graph = _call_graph()
    depth: dict[tuple[str, str], dict[str, int]] = {}
    for name, command in COMMANDS.items():
        entry = _entry(command)
        if entry is None or entry not in graph:
            continue
        queue, seen = deque([(entry, 0)]), {entry}
        while queue:
            unit, steps = queue.popleft()
            depth.setdefault(unit, {})[name] = steps
            for nxt in graph.get(unit, ()):
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append((nxt, steps + 1))
    nearest = {unit: {c for c, d in by.items() if d == min(by.values())} for unit, by in depth.items()}
    return nearest, {unit: set(by) for unit, by in depth.items()}


NEAREST, REACHING = _reaching_commands()


# --- the texts ---------------------------------------------------------------------------------------------


def _constants(tree: ast.Module) -> dict[str, ast.AST]:
    return {target.id: node.value for node in tree.body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)}


def _strings(node: ast.AST | None, constants: dict[str, ast.AST], depth: int = 0) -> list[str]:
    """The texts an expression can produce, with HOLE for what is only known at run time."""
    if node is None or depth > 5:
        return []
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        text = ""
        for part in node.values:
            if isinstance(part, ast.Constant):
                text += str(part.value)
            else:
                inner = _strings(part.value, constants, depth + 1)  # f"{'--x' if a else ''}": the literal parts
                text += inner[0] if len(inner) == 1 else HOLE
        return [text]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = _strings(node.left, constants, depth + 1) or [HOLE]
        right = _strings(node.right, constants, depth + 1) or [HOLE]
        return [a + b for a in left for b in right]
    if isinstance(node, ast.IfExp):
        return _strings(node.body, constants, depth + 1) + _strings(node.orelse, constants, depth + 1)
    if isinstance(node, ast.Name) and node.id in constants:
        return _strings(constants[node.id], constants, depth + 1)
    if isinstance(node, ast.List | ast.Tuple):
        return [" ".join((_strings(e, constants, depth + 1) or [HOLE])[0] for e in node.elts)]
    return []


def _texts_in(module: str, function: str | None, node: ast.AST, constants: dict[str, ast.AST]) -> list[Text]:
    found = []

    def add(kind: str, line: int, expr: ast.AST | None, echo: str | None = None) -> None:
        found.extend(Text(module, function, line, kind, text, echo) for text in _strings(expr, constants) if text)

    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            name = sub.func.id if isinstance(sub.func, ast.Name) else getattr(sub.func, "attr", None)
            echo = None
            if name in ERROR_CLASSES:
                for arg in sub.args:
                    for text in _strings(arg, constants):
                        echoed = ECHO.match(text)
                        echo = echo or (echoed.group(1) if echoed and arg is sub.args[0] else None)
                        found.append(Text(module, function, sub.lineno, "message", text,
                                          echoed.group(1) if echoed else None))
            for keyword in sub.keywords:
                if keyword.arg == "hint":  # about the same flag as its message, when that one echoes a flag
                    add("hint", sub.lineno, keyword.value, echo)
            if name == "TrainRequest":
                for keyword in sub.keywords:
                    if keyword.arg == "argv" and isinstance(keyword.value, ast.List):
                        for argv in _strings(keyword.value, constants):  # what runner._resume_command prints
                            add("resume", sub.lineno, ast.Constant(f"lorawiz {argv} --resume auto"))
        elif isinstance(sub, ast.Assign | ast.AugAssign):
            targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
            if any(isinstance(t, ast.Name) and t.id == "hint" for t in targets):
                add("hint", sub.lineno, sub.value)
    return found


def _all_texts() -> list[Text]:
    texts = []
    for module, tree in TREES.items():
        constants = _constants(tree)
        units = _units(tree)
        inside = {id(sub) for _, node in units for sub in ast.walk(node)}
        for qual, node in units:
            texts += _texts_in(module, qual, node, constants)
        for statement in tree.body:  # module level, outside any function
            if id(statement) not in inside and not isinstance(statement, ast.ClassDef | ast.FunctionDef):
                texts += _texts_in(module, None, statement, constants)
    return texts


TEXTS = _all_texts()


# --- reading a text ----------------------------------------------------------------------------------------


def _code_spans(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"`[^`]*`", text)]


def command_lines(text: str) -> list[tuple[str, list[str], tuple[int, int]]]:
    """Each `lorawiz COMMAND ...` in `text`: the command's words, the flags written after it up to the end of
    its clause, and where it lies in the text."""
    found = []
    for match in COMMAND_REF.finditer(text):
        word = match.group(1)
        line = text[match.end():].split("\n", 1)[0]  # a command line ends with its line
        glued, _, tail = line.partition(" ")  # glued: what sticks to the word ("`", ".", "'s")
        tokens = tail.split(" ") if tail else []
        in_code = match.start() > 0 and text[match.start() - 1] == "`"
        if word not in COMMANDS and not in_code and (glued or not tokens or not tokens[0].startswith("-")):
            continue  # prose such as "lorawiz reads decoder-only configs", not a command line
        name, ends_here, end = word, bool(glued), match.end() + len(glued)
        if not ends_here and tokens and f"{word} {tokens[0].rstrip(CLOSERS)}" in COMMANDS:
            name = f"{word} {tokens[0].rstrip(CLOSERS)}"
            ends_here, end = tokens[0][-1:] in CLOSERS, end + 1 + len(tokens[0])
            tokens = tokens[1:]
        flags = []
        for token in tokens if not ends_here else []:
            end += 1 + len(token)
            bare = token.rstrip(CLOSERS + "'\"")
            if re.fullmatch(r"--?[A-Za-z][\w-]*", bare):
                flags.append(bare)
            if token[-1:] in CLOSERS or token in ("or", "and", "then"):
                break
        found.append((name, flags, (match.start(), end)))
    return found


def lone_flags(text: str) -> list[str]:
    """The --flags not written after a `lorawiz COMMAND`, nor inside another program's `code span`."""
    taken = [span for *_, span in command_lines(text)]
    taken += [span for span in _code_spans(text) if not text[span[0] + 1:].startswith("lorawiz ")]
    return [m.group() for m in LONG_FLAG.finditer(text) if not any(a <= m.start() < b for a, b in taken)]


def problems_in(text: Text) -> list[str]:
    problems = []
    for name, flags, _ in command_lines(text.text):
        if name not in COMMANDS:
            problems.append(f"{text}: no command `lorawiz {name}`")
            continue
        problems += [f"{text}: `lorawiz {name}` has no {flag}" for flag in flags if flag not in OPTIONS[name]]
    unit = (text.module, text.function)
    owners = NEAREST.get(unit, set()) if text.function else set()
    for flag in lone_flags(text.text):
        if owners and flag == text.echo:  # raised on a value given with the flag: whoever gave it has it
            if not any(flag in OPTIONS[c] for c in REACHING[unit]):
                problems.append(f"{text}: no command that reaches this line has {flag}")
        elif owners:
            lacking = sorted(c for c in owners if flag not in OPTIONS[c])
            if lacking:
                problems.append(f"{text}: {flag} is not an option of {', '.join(f'lorawiz {c}' for c in lacking)}, "
                                f"which reach{'es' if len(lacking) == 1 else ''} this line")
        elif not any(flag in options for options in OPTIONS.values()) and flag not in ROOT_OPTIONS:
            problems.append(f"{text}: no command has {flag}")
    return problems


# --- the tests ---------------------------------------------------------------------------------------------


def test_the_source_yields_the_texts_to_check():
    kinds = {t.kind for t in TEXTS}
    assert kinds == {"hint", "message", "resume"}
    assert len([t for t in TEXTS if t.kind == "hint"]) > 100
    assert any("lorawiz format" in t.text for t in TEXTS)
    # the shared data code is reached by several commands; the wizard's own code by init alone
    assert {"format", "inspect"} <= NEAREST[("lorawiz.data.convert", "resolve_shape")]
    assert NEAREST[("lorawiz.wizard.flow", "choose_model")] == {"init"}


def test_every_command_line_and_flag_in_hints_and_messages_exists():
    problems = [problem for text in TEXTS for problem in problems_in(text)]
    assert not problems, "\n".join(problems)


def test_every_command_line_written_anywhere_in_the_package_exists():
    """Beyond hints: --help examples (docstrings), printed lines ("train it: lorawiz train FILE"), config headers."""
    problems, seen = [], 0
    for module, tree in TREES.items():
        constants = _constants(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant | ast.JoinedStr):
                continue
            for text in _strings(node, constants):
                for name, flags, _ in command_lines(text):
                    seen += 1
                    where = f"{module.replace('.', '/')}.py:{node.lineno}"
                    if name not in COMMANDS:
                        problems.append(f"{where}: no command `lorawiz {name}`")
                    else:
                        problems += [f"{where}: `lorawiz {name}` has no {flag}" for flag in flags
                                     if flag not in OPTIONS[name]]
    assert seen > 100
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("text", "expected"), [
    ("Clean it first: lorawiz format X -o clean.jsonl --skip-bad", [("format", ["-o", "--skip-bad"])]),
    ("run `lorawiz config show --json`, or pass --set", [("config show", ["--json"])]),
    ("Resume with lorawiz train X --resume auto; then --overwrite.", [("train", ["--resume"])]),
    ("lorawiz reads decoder-only configs", []),
    ("not a lorawiz run; --overwrite only replaces runs", []),
    ("lorawiz train FILE\nthen --overwrite", [("train", [])]),
    ("(`lorawiz presets` explains each)", [("presets", [])]),
    ("try `lorawiz frobnicate`", [("frobnicate", [])]),
])
def test_command_lines_are_read_up_to_the_end_of_their_clause(text, expected):
    assert [(name, flags) for name, flags, _ in command_lines(text)] == expected


def test_a_wrong_flag_and_a_missing_command_are_reported():
    bad = [Text("lorawiz.data.convert", "resolve_shape", 1, "hint", "Pass --from SHAPE."),
           Text("lorawiz.data.stats", None, 1, "hint", "Run lorawiz inspect X --from chat."),
           Text("lorawiz.data.stats", None, 1, "hint", "Run `lorawiz frobnicate`."),
           Text("lorawiz.demo", None, 1, "resume", "lorawiz demo --output-dir X --resume auto")]
    found = [problems_in(text) for text in bad]
    assert "--from is not an option of lorawiz inspect" in found[0][0]
    assert "`lorawiz inspect` has no --from" in found[1][0]
    assert "no command `lorawiz frobnicate`" in found[2][0]
    assert "`lorawiz demo` has no --resume" in found[3][0]
    assert problems_in(Text("lorawiz.data.stats", None, 1, "hint", "Fix it: lorawiz format X --from chat")) == []


def test_a_message_about_a_given_flag_needs_only_some_command_that_reaches_it_to_have_the_flag():
    # resolve_shape checks --from only when format passed it: inspect, which reaches it too, need not have it
    given = Text("lorawiz.data.convert", "resolve_shape", 1, "message", "--from X: unknown shape.", echo="--from")
    assert problems_in(given) == []
    assert problems_in(Text("lorawiz.data.convert", "resolve_shape", 1, "message", "--frobnicate X: unknown.",
                            echo="--frobnicate")) == ["lorawiz/data/convert.py:1 (message) '--frobnicate X: unknown.': "
                                                      "no command that reaches this line has --frobnicate"]
