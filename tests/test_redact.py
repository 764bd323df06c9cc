import json

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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key = [REDACTED:aws_secret_key]",
        ),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7b\n-----END RSA PRIVATE KEY----- ok",
            "[REDACTED:private_key] ok",
        ),
        # A truncated block (no END line) is redacted to the end of its body, not beyond.
        (
            '{"k": "-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjEAAAA\\n", "n": 1}',
            '{"k": "[REDACTED:private_key]", "n": 1}',
        ),
        ("t eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl end", "t [REDACTED:jwt] end"),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic [REDACTED:basic_auth]"),
        ("pay sk_live_4eC39HqLyjWDarjtT1zdp7dc", "pay [REDACTED:stripe_key]"),
        (
            "mysql://app:S3cret@db:3306/x redis://:r3dis@cache:6379 https://u:p@ss@h.io/",
            "mysql://app:[REDACTED:url_password]@db:3306/x "
            "redis://:[REDACTED:url_password]@cache:6379 https://u:[REDACTED:url_password]@h.io/",
        ),
        (
            "password=hunter2 api_key=abc123&secret=s3 token: tk_9",
            "password=[REDACTED:credential] api_key=[REDACTED:credential]&"
            "secret=[REDACTED:credential] token: [REDACTED:credential]",
        ),
        # JSON stays JSON: a bare number under a credential key becomes a string marker.
        (
            '{"password": "pw", "apiKey": 12345, "max_tokens": 9, "bypass": "x"}',
            '{"password": "[REDACTED:credential]", "apiKey": "[REDACTED:credential]", '
            '"max_tokens": 9, "bypass": "x"}',
        ),
        ("SSN 078-05-1120, not 000-12-3456", "SSN [REDACTED:us_ssn], not 000-12-3456"),
        (
            "IBAN DE89 3704 0044 0532 0130 00; bad GB82WEST12345698765431",
            "IBAN [REDACTED:iban]; bad GB82WEST12345698765431",
        ),
        (
            "+1 415 555 2671, (415) 555-2671, 020 7946 0958, 01 42 68 53 00",
            "[REDACTED:phone], [REDACTED:phone], [REDACTED:phone], [REDACTED:phone]",
        ),
    ],
)
def test_new_kinds_are_redacted(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert redact_text(expected) == expected


def test_redacted_json_stays_valid_json() -> None:
    from agentops_assets.telemetry.redact import redact_json

    encoded = json.dumps({"token": 7, "nested": {"note": "call +1 415 555 2671"}, "n": [1, 2]})
    decoded = json.loads(redact_json(encoded))
    assert decoded == {
        "token": "[REDACTED:credential]",
        "nested": {"note": "call [REDACTED:phone]"},
        "n": [1, 2],
    }


def test_numeric_key_is_not_a_card_but_a_card_with_separators_is() -> None:
    from agentops_assets.telemetry.redact import secret_kinds

    assert secret_kinds("4111111111111111", bare_numbers=False) == []
    assert secret_kinds("4111111111111111") == ["card_number"]
    assert secret_kinds("4111-1111-1111-1111", bare_numbers=False) == ["card_number"]


def _texts_to_screen() -> list[str]:
    """Secrets of every kind, near misses, texts holding several kinds, ids and non-ASCII."""
    import random
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import bench_redaction

    samples = [s.text for s in bench_redaction.SAMPLES]
    misses = [
        "0100000000000001",
        '{"agentops.agent.inherited_from":"0100000000000001","x":"4111111111111111"}',
        "2026-11-21T10:00:00Z took 1234 ms, order 5555-1234",
        "ID DE89 3704 0044 0532 0130 00 and DE00 0000",
        "password: null, token=*** and api_key = '[REDACTED:credential]'",
        "Bearer short",
        "basic dXNlcjpwYXNz and basic notbase64!",
        "call 0207 946 0958 or +44 20 7946 0958 at 10:30",
        "123-45-6789 vs 000-12-3456 vs 666-12-3456",
        "ssh://user:pa ss@host and https://u:p@h/x",
        "Kelvin \u212a key=abc123 and ſecret=abc and credentİal=x",
        "caf\u00e9 jane.doe@example.com \u0660\u0661\u0662\u0663",
        "",
        "sk-ant-" + "a" * 30 + " then AKIAIOSFODNN7EXAMPLE then ghp_" + "b" * 36,
    ]
    rng = random.Random(13)
    pieces = [*samples, *misses, " ", "=", ":", '"', "\\n", "4111", "-", "@x.io", "0"]
    mixed = [" ".join(rng.choice(pieces) for _ in range(rng.randint(1, 4))) for _ in range(400)]
    return [*samples, *misses, *mixed]


@pytest.mark.parametrize("bare_numbers", [True, False])
def test_redact_texts_gives_what_redact_text_gives(bare_numbers: bool) -> None:
    from memory.redaction import redact_texts

    texts = _texts_to_screen()
    expected = {t: redact_text(t, bare_numbers=bare_numbers) for t in texts}
    assert redact_texts(texts, bare_numbers=bare_numbers) == expected
    assert sum(t != r for t, r in expected.items()) > 100  # secrets were found, not only misses


def test_redact_frame_gives_redact_text_of_every_cell() -> None:
    texts = _texts_to_screen()
    frame = pl.DataFrame({"session_id": texts, "result": texts[::-1], "n": range(len(texts))})
    frame = pl.concat([frame, frame.with_columns(pl.lit(None, dtype=pl.String).alias("result"))])
    # The reference: redact_text on every cell, labels (session_id) without bare card numbers.
    expected = frame.with_columns(
        pl.Series("session_id", [redact_text(t, bare_numbers=False) for t in frame["session_id"]]),
        pl.Series(
            [None if t is None else redact_text(t) for t in frame["result"]], dtype=pl.String
        ).alias("result"),
    )
    assert redact_frame(frame).equals(expected)
    assert not frame.equals(expected)  # there was something to redact
