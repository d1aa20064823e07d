"""Load a TOML file into a pydantic model, with errors that name the key path and line."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)


class FileError(ValueError):
    """A file that cannot be used, with one line per problem: ``key.path (line N): what``."""

    def __init__(self, path: str | Path, problems: Sequence[str]) -> None:
        self.path = str(path)
        self.problems = list(problems)
        super().__init__(f"{self.path}: " + "; ".join(self.problems))


def _split_key(text: str) -> list[str]:
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", text)
    return [p.strip("\"'") for p in parts]


def key_lines(text: str) -> dict[tuple[str | int, ...], int]:
    """Map each table and key path in a TOML text to the line (1-based) that defines it.

    Array-of-tables entries get their index: ``[[vehicles]]`` twice gives ``("vehicles", 0)``
    and ``("vehicles", 1)``.

    >>> key_lines('a = 1\\n[t]\\nb.c = 2\\n[[v]]\\nx = 1\\n[[v]]\\nx = 2\\n')[("v", 1, "x")]
    7
    """
    lines: dict[tuple[str | int, ...], int] = {}
    counts: dict[tuple[str | int, ...], int] = {}
    table: tuple[str | int, ...] = ()
    in_multiline = False
    for number, raw in enumerate(text.splitlines(), start=1):
        if in_multiline:
            if raw.count('"""') % 2 == 1 or raw.count("'''") % 2 == 1:
                in_multiline = False
            continue
        header = _HEADER.match(raw)
        if header and not _KEY.match(raw):
            path: tuple[str | int, ...] = tuple(_split_key(header.group(2)))
            if header.group(1) == "[[":
                index = counts.get(path, 0)
                counts[path] = index + 1
                lines.setdefault(path, number)
                path = (*path, index)
            table = path
            lines.setdefault(table, number)
            continue
        key = _KEY.match(raw)
        if key:
            lines.setdefault((*table, *_split_key(key.group(1))), number)
            if raw.count('"""') % 2 == 1 or raw.count("'''") % 2 == 1:
                in_multiline = True
    return lines


def _line_for(loc: Sequence[str | int], lines: dict[tuple[str | int, ...], int]) -> int | None:
    path = tuple(loc)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None


def describe(exc: ValidationError, text: str) -> list[str]:
    """One message per pydantic error: the dotted key path, its line, and what is wrong."""
    lines = key_lines(text)
    problems = []
    for err in exc.errors():
        # discriminated unions put the tag in the path; a reader wants only real keys
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_for(loc, lines)
        where = f"{dotted} (line {line})" if line else dotted
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        elif err["type"] == "missing":
            message = "missing required key"
        problems.append(f"{where}: {message}")
    return problems


def _nul_keys(value: object, loc: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Key paths whose key or string value holds a NUL character."""
    if isinstance(value, str):
        return [loc] if "\x00" in value else []
    if isinstance(value, dict):
        found: list[tuple[str | int, ...]] = []
        for key, item in value.items():
            found += [(*loc, key)] if "\x00" in key else _nul_keys(item, (*loc, key))
        return found
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _nul_keys(item, (*loc, i))]
    return []


def located(path: str | Path, problems: Sequence[tuple[tuple[str | int, ...], str]]) -> FileError:
    """A ``FileError`` for problems found in a valid file's values (key path, message), each
    named with its line as ``describe`` does."""
    try:
        lines = key_lines(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        lines = {}
    out = []
    for loc, message in problems:
        line = _line_for(loc, lines)
        dotted = ".".join(str(p) for p in loc)
        out.append(f"{dotted} (line {line}): {message}" if line else f"{dotted}: {message}")
    return FileError(path, out)


def load_model(path: str | Path, model: type[M]) -> M:
    """Parse and validate a TOML file; raise FileError naming every problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise FileError(path, [f"cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        where = f"byte {exc.start}"
        raise FileError(path, [f"not UTF-8 at {where}: save the file as UTF-8"]) from None
    return parse_model(text, model, source=str(path))


def parse_model(text: str, model: type[M], *, source: str = "<text>") -> M:
    """Like ``load_model`` for a TOML text already in hand."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FileError(source, [f"not valid TOML: {exc}"]) from None
    except RecursionError:
        raise FileError(source, ["not valid TOML: nested too deeply"]) from None
    # a NUL passes TOML and pydantic but no path, address or id can hold one: opening the
    # path would fail only when the lane runs, long after the config was called valid
    if nul := _nul_keys(data):
        lines = key_lines(text)
        problems = []
        for loc in nul:
            line = _line_for(loc, lines)
            dotted = ".".join(str(p).replace("\x00", "\\u0000") for p in loc)
            where = f"{dotted} (line {line})" if line else dotted
            problems.append(f"{where}: contains a NUL character (\\u0000)")
        raise FileError(source, problems)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise FileError(source, describe(exc, text)) from None
