import polars as pl
import pytest

from agentops_assets.telemetry.redact import redact_frame, redact_text


@pytest.mark.parametrize(
    ("text", "marker"),
    [
        ("key sk-proj-Abcdefghijklmnopqrstuvwxyz0123456789", "[REDACTED:openai_key]"),
        ("sk-ant-api03-abcdefghijklmnopqrstuvwxyz-0123456789", "[REDACTED:anthropic_key]"),
        ("aws AKIAIOSFODNN7EXAMPLE here", "[REDACTED:aws_access_key]"),
        ("token ghp_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ12", "[REDACTED:github_token]"),
        (
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
            "[REDACTED:bearer_token]",
        ),
        ("write to jane.doe+ops@example.co.uk today", "[REDACTED:email]"),
        ("card 4111 1111 1111 1111 exp 09/28", "[REDACTED:card_number]"),
        ("amex 3782-822463-10005", "[REDACTED:card_number]"),
    ],
)
def test_secrets_are_replaced_by_markers(text: str, marker: str) -> None:
    redacted = redact_text(text)
    assert marker in redacted
    assert "1111 1111" not in redacted and "AKIAIOSFODNN7" not in redacted


@pytest.mark.parametrize(
    "text",
    [
        "card-shaped but fails Luhn 4111 1111 1111 1112",
        "epoch ns 1764000000123456789 and a duration 412.3456789012345",
        "plain words about a skeleton key, sk- alone, and user@localhost",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_redact_frame_touches_only_matching_cells_of_string_columns() -> None:
    frame = pl.DataFrame(
        {
            "text": ["hello", "mail ops@example.com", None],
            "other": ["AKIAIOSFODNN7EXAMPLE", "x", "y"],
            "n": [1, 2, 3],
        }
    )
    out = redact_frame(frame)
    assert out.get_column("text").to_list() == ["hello", "mail [REDACTED:email]", None]
    assert out.get_column("other").to_list()[0] == "[REDACTED:aws_access_key]"
    assert out.get_column("n").to_list() == [1, 2, 3]
    only_text = redact_frame(frame, ["text"])
    assert only_text.get_column("other").to_list()[0] == "AKIAIOSFODNN7EXAMPLE"
