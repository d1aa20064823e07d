"""Load a TOML file into a pydantic model, with errors that name the key path and line."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Sequence
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


Problem = tuple[tuple[str | int, ...], str]  # key path, what is wrong there


def _named(loc: Sequence[str | int], message: str, lines: dict[tuple[str | int, ...], int]) -> str:
    """``key.path (line N): message``, the form every problem of a file takes."""
    # a NUL in a key is shown escaped: a terminal would swallow it
    dotted = ".".join(str(p).replace("\x00", "\\u0000") for p in loc) or "(top level)"
    line = _line_for(loc, lines)
    return f"{dotted} (line {line}): {message}" if line else f"{dotted}: {message}"


def describe(exc: ValidationError, text: str) -> list[str]:
    """One message per pydantic error: the dotted key path, its line, and what is wrong."""
    lines = key_lines(text)
    problems = []
    for err in exc.errors():
        # discriminated unions put the tag in the path; a reader wants only real keys
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        elif err["type"] == "missing":
            message = "missing required key"
        problems.append(_named(loc, message, lines))
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


def load_model(
    path: str | Path, model: type[M], check: Callable[[M], Sequence[Problem]] | None = None
) -> M:
    """Parse and validate a TOML file; raise FileError naming every problem, with ``check``'s
    on the valid model (problems of its values on this machine) too."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise FileError(path, [f"cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        where = f"byte {exc.start}"
        raise FileError(path, [f"not UTF-8 at {where}: save the file as UTF-8"]) from None
    return parse_model(text, model, source=str(path), check=check)


def parse_model(
    text: str,
    model: type[M],
    *,
    source: str = "<text>",
    check: Callable[[M], Sequence[Problem]] | None = None,
) -> M:
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
        message = "contains a NUL character (\\u0000)"
        raise FileError(source, [_named(loc, message, lines) for loc in nul])
    try:
        result = model.model_validate(data)
    except ValidationError as exc:
        raise FileError(source, describe(exc, text)) from None
    if check is not None and (problems := check(result)):
        lines = key_lines(text)
        raise FileError(source, [_named(loc, message, lines) for loc, message in problems])
    return result
