"""Policy files: a folder that overrides one file keeps the shipped default of every other."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

import policies
from agentops_assets.storage.config import Paths
from agentops_assets.storage.policy_file import PolicyFileError, read_document

SHIPPED = Path(policies.__file__).parent


def test_a_folder_lacking_a_file_falls_back_to_the_shipped_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "budgets.yaml").write_text("budgets: []\n")
    monkeypatch.setenv("AGENTOPS_POLICIES", str(folder))
    paths = Paths.from_env(tmp_path / "home")
    assert paths.policy_file("budgets.yaml") == folder / "budgets.yaml"
    for name in ("pricing.yaml", "maintenance.yaml", "drift.yaml"):
        assert paths.policy_file(name) == SHIPPED / name
        assert paths.policy_file(name).is_file()


class _Rule(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    warning: float = pydantic.Field(default=0.5, gt=0)


class _Doc(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    window_days: int = 14
    metrics: dict[str, _Rule] = {}


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("window_days: 14\nmetrics:\n  confidence:\n    warning: -1\n", 4, "greater than 0"),
        ("window_days: 14\nwindow: 3\n", 2, "unknown key 'window'"),
        ("window_days: ten\n", 1, "'window_days'"),
        ("window_days: 14\nwindow_days: 15\n", 2, "appears twice"),
        ("metrics:\n  confidence: {}\n  confidence: {}\n", 3, "'confidence' appears twice"),
        ("metrics: [1,\n", 2, "not valid YAML"),
        ("- 1\n", 1, "mapping of settings"),
    ],
)
def test_a_document_mistake_is_one_sentence_naming_file_and_line(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    path = tmp_path / "drift.yaml"
    path.write_text(text)
    with pytest.raises(PolicyFileError) as caught:
        read_document(path, _Doc)
    message = str(caught.value)
    assert message.startswith(f"{path}, line {line}: "), message
    assert words in message and message.count("\n") == 0


def test_an_empty_document_is_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "drift.yaml"
    path.write_text("# nothing set\n")
    assert read_document(path, _Doc) == _Doc()
