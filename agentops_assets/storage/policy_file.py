"""Read a policy file (YAML) into validated entries, naming the line of any mistake.

Policy files are edited by hand and reviewed like code, so an error must point at the line to
fix: ``policies/budgets.yaml, line 12: daily_usd must be a number greater than 0, got 'ten'.``

A policy file is small and plain: it may not exceed :data:`MAX_POLICY_BYTES`, nest deeper than
:data:`MAX_DEPTH` levels, or use anchors and aliases (a 400-byte file of nested aliases, the
"billion laughs", expands to a billion values).
"""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any, Final, TypeVar

import pydantic
import yaml

Entry = TypeVar("Entry", bound=pydantic.BaseModel)

MAX_POLICY_BYTES: Final = 256 << 10
MAX_DEPTH: Final = 20
# libyaml when PyYAML was built with it: the pure-Python parser needs seconds per 100k values.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# A wrong value is quoted in the message, cut short: it may be a list of thousands of items.
_QUOTE = reprlib.Repr()
_QUOTE.maxstring = _QUOTE.maxother = 60
_QUOTE.maxlevel = 2


class PolicyFileError(ValueError):
    """A policy file (pricing.yaml, budgets.yaml, drift.yaml...) is invalid; the message names
    the file and the line."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        where = f"{path}, line {line}" if line else path
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


class PolicyEntry(pydantic.BaseModel):
    """Base of one entry in a policy file: unknown keys are mistakes, not ignored."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def read_entries(path: Path, *, section: str, entry: type[Entry]) -> list[tuple[int, Entry]]:
    """The entries listed under ``section`` in the YAML file at ``path``, with their lines.

    Args:
        path: The policy file. A missing file is an error; callers decide whether to skip it.
        section: Top-level key holding a list of mappings.
        entry: Pydantic model each mapping must satisfy.

    Returns:
        ``(line, entry)`` pairs in file order; lines are 1-based.

    Raises:
        PolicyFileError: The file is not valid YAML, has the wrong shape, or an entry is
            invalid. The message names the file and the line.
    """
    name = str(path)
    root = _parse(name, _read(path))
    if root is None:
        return []
    if not isinstance(root, yaml.MappingNode):
        raise PolicyFileError(name, _line(root), f"expected a mapping with a '{section}' list.")
    items = _mapping(name, root)
    unknown = [key for key in items if key != section]
    if unknown:
        key_node = items[unknown[0]][0]
        raise PolicyFileError(
            name, _line(key_node), f"unknown key '{unknown[0]}'; expected only '{section}'."
        )
    if section not in items:
        return []
    listing = items[section][1]
    if isinstance(listing, yaml.ScalarNode) and listing.value in ("", "~", "null"):
        return []
    if not isinstance(listing, yaml.SequenceNode):
        raise PolicyFileError(name, _line(listing), f"'{section}' must be a list of entries.")
    return [(_line(node), _validate(name, node, entry)) for node in listing.value]


def read_document(path: Path, model: type[Entry]) -> Entry:
    """The whole YAML file at ``path`` validated as one ``model``, naming the line of a mistake.

    For policy files shaped as one mapping of settings (``drift.yaml``, ``alerts.yaml``): an
    error inside nested mappings and lists points at the line of the offending value. An empty
    file is the model's defaults.

    Raises:
        PolicyFileError: The file is not valid YAML or does not satisfy ``model``.
    """
    name = str(path)
    root = _parse(name, _read(path))
    if root is None:
        return model()
    if not isinstance(root, yaml.MappingNode):
        raise PolicyFileError(name, _line(root), "expected a mapping of settings.")
    _no_duplicate_keys(name, root)
    try:
        return model.model_validate(_value(root))
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        node, field = _locate(name, root, first["loc"])
        raise PolicyFileError(name, _line(node), _sentence(field, first)) from None


def _locate(name: str, root: yaml.Node, loc: tuple[Any, ...]) -> tuple[yaml.Node, str | None]:
    """The deepest node along a pydantic error location, and the dotted name of the field."""
    node, parts = root, []
    for step in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(step, str):
            items = _mapping(name, node)
            if step not in items:
                break
            key_node, node = items[step]
            if isinstance(node, yaml.ScalarNode) and not node.value:
                node = key_node  # an empty value: point at its key
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value)
        ):
            node = node.value[step]
        else:
            break
        parts.append(str(step))
    return node, ".".join(parts) or None


def _read(path: Path) -> str:
    name = str(path)
    # A FIFO or a device would block or never end; a policy file is a regular file.
    if not path.is_file():
        raise PolicyFileError(name, None, "is not a regular file.")
    try:
        with path.open("rb") as file:
            data = file.read(MAX_POLICY_BYTES + 1)
        if len(data) > MAX_POLICY_BYTES:
            raise PolicyFileError(
                name, None, f"is larger than {MAX_POLICY_BYTES >> 10} KiB; a policy file is small."
            )
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PolicyFileError(name, None, f"cannot be read ({error}).") from None


def _parse(name: str, text: str) -> yaml.Node | None:
    """The node tree of ``text``; invalid YAML is one sentence naming its line."""
    try:
        return _compose(name, text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        line = mark.line + 1 if mark else None
        raise PolicyFileError(name, line, f"is not valid YAML ({problem}).") from None


def _compose(name: str, text: str) -> yaml.Node | None:
    """The node tree of ``text``, once its events show no anchor, alias or deep nesting.

    The events are checked before anything is composed, so an alias bomb costs one parse.
    """
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise PolicyFileError(
                name,
                event.start_mark.line + 1,
                "anchors and aliases (&name, *name, <<) are not allowed in a policy file; "
                "write each value out.",
            )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise PolicyFileError(
                    name, event.start_mark.line + 1, f"nests deeper than {MAX_DEPTH} levels."
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return yaml.compose(text, Loader=_Loader)


def _validate(name: str, node: yaml.Node, entry: type[Entry]) -> Entry:
    if not isinstance(node, yaml.MappingNode):
        raise PolicyFileError(name, _line(node), "each entry must be a mapping of key: value.")
    items = _mapping(name, node)
    data = {key: _value(value) for key, (_, value) in items.items()}
    try:
        return entry.model_validate(data)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else None
        line = _line(items[field][1]) if field in items else _line(node)
        raise PolicyFileError(name, line, _sentence(field, first)) from None


def _sentence(field: str | None, error: Any) -> str:
    if error["type"] == "missing":
        return f"'{field}' is required."
    if error["type"] == "extra_forbidden":
        return f"unknown key '{field}'."
    message = str(error["msg"]).removeprefix("Value error, ")
    subject = f"'{field}' " if field else ""
    got = error.get("input")
    suffix = f", got {_QUOTE.repr(got)}" if got is not None and not isinstance(got, dict) else ""
    return f"{subject}{message[0].lower()}{message[1:]}{suffix}."


def _no_duplicate_keys(name: str, node: yaml.Node) -> None:
    """A key written twice in any mapping of the file is a mistake (YAML keeps the last)."""
    if isinstance(node, yaml.MappingNode):
        for _, value in _mapping(name, node).values():
            _no_duplicate_keys(name, value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _no_duplicate_keys(name, item)


def _value(node: yaml.Node) -> Any:
    return yaml.constructor.SafeConstructor().construct_document(node)


def _mapping(name: str, node: yaml.MappingNode) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    items: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        if key in items:
            raise PolicyFileError(name, _line(key_node), f"key '{key}' appears twice.")
        items[key] = (key_node, value_node)
    return items


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1
