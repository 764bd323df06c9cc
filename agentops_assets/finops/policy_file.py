"""Read a policy file (YAML) into validated entries, naming the line of any mistake.

Policy files are edited by hand and reviewed like code, so an error must point at the line to
fix: ``policies/budgets.yaml, line 12: daily_usd must be a number greater than 0, got 'ten'.``
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from agentops_assets.finops.errors import PolicyFileError

Entry = TypeVar("Entry", bound=pydantic.BaseModel)


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
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PolicyFileError(name, None, f"cannot be read ({error}).") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        line = mark.line + 1 if mark else None
        raise PolicyFileError(name, line, f"is not valid YAML ({problem}).") from None
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
    suffix = f", got {got!r}" if got is not None and not isinstance(got, dict) else ""
    return f"{subject}{message[0].lower()}{message[1:]}{suffix}."


def _value(node: yaml.Node) -> Any:
    return yaml.SafeLoader(yaml.serialize(node)).get_single_data()


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
