"""Redaction of secrets and personal data before text is stored (telemetry and memory alike).

Two stages keep it fast on large frames. ``DETECT`` is a loose pattern in the syntax of Rust's
``regex`` crate (no look-around), a superset of every kind below, that polars runs over whole
columns at native speed. Only the cells it flags are rewritten in Python, by the exact patterns
(look-arounds allowed) and checks (Luhn for cards, mod-97 for IBANs, base64 ``user:password``
for Basic auth) that keep timestamps, ids and amounts out.

The kinds follow the plugins of detect-secrets (Yelp/detect-secrets: AWS, private keys, JWT,
Basic auth in URLs, Stripe, keyword assignments) and add the personal data it does not cover
(e-mail, card, US SSN, IBAN, phone). Markers look like ``[REDACTED:kind]``; redacting twice
changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Final

import polars as pl

__all__ = [
    "DETECT",
    "KINDS",
    "flag_cells",
    "redact_frame",
    "redact_json",
    "redact_text",
    "redact_texts",
    "secret_kinds",
]

_KEY_WORD: Final = (
    r"passw(?:or)?d|passphrase|pwd|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|secret[_-]?key|private[_-]?key|auth[_-]?key|credentials?"
)
_PEM_BODY: Final = r"(?:[A-Za-z0-9+/=:,.\- \t\r\n]|\\+[nrt])"
_PEM_EDGE: Final = r"[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
_URL_STOP: Final = r"\s/?#\[\]\"'<>"


def _ascii(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.ASCII)


@dataclass(frozen=True)
class _Kind:
    name: str
    pattern: re.Pattern[str]
    check: Callable[[str], bool] | None  # confirms the group ``s`` (or the whole match)
    gate: Callable[[str], object]  # a cheap test that must pass before ``pattern`` runs


def _luhn_ok(candidate: str) -> bool:
    digits = [int(c) for c in candidate if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _iban_ok(candidate: str) -> bool:
    """ISO 13616: move the country and check digits to the end; the number mod 97 is 1."""
    code = candidate.replace(" ", "")
    if not 15 <= len(code) <= 34:
        return False
    moved = code[4:] + code[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _basic_ok(candidate: str) -> bool:
    try:
        decoded = base64.b64decode(candidate + "=" * (-len(candidate) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return b":" in decoded and decoded.isascii()


def _aws_secret_ok(candidate: str) -> bool:
    # 40 characters of base64; mixed case and a digit or / or + keep hex digests and words out.
    return (
        any(c.islower() for c in candidate)
        and any(c.isupper() for c in candidate)
        and any(c.isdigit() or c in "/+" for c in candidate)
        and "//" not in candidate
    )


def _digits_between(low: int, high: int) -> Callable[[str], bool]:
    return lambda candidate: low <= sum(c.isdigit() for c in candidate) <= high


def _nanp_ok(candidate: str) -> bool:
    digits = "".join(c for c in candidate if c.isdigit())
    return digits[0] in "23456789"


def _kind(
    name: str,
    pattern: str,
    gate: str | Callable[[str], object],
    check: Callable[[str], bool] | None = None,
) -> _Kind:
    test = _ascii(gate).search if isinstance(gate, str) else gate
    return _Kind(name, _ascii(pattern), check, test)


def _names_a_credential(text: str) -> bool:
    lowered = text.lower()
    return any(hint in lowered for hint in ("pass", "pwd", "secret", "token", "key", "credential"))


# Order matters: specific keys before generic shapes (an Anthropic key also starts with
# "sk-"; a key after "api_key=" is named by its kind, not as a keyword value).
_KINDS: Final[tuple[_Kind, ...]] = (
    _kind(
        "private_key",
        rf"-----BEGIN {_PEM_EDGE}(?:{_PEM_BODY}*?-----END {_PEM_EDGE}|{_PEM_BODY}*)",
        "PRIVATE KEY",
    ),
    _kind(
        "url_password",
        rf"[A-Za-z][A-Za-z0-9+.\-]*://[^{_URL_STOP}:@]*:(?P<s>[^{_URL_STOP}]+)@",
        "://",
    ),
    _kind("bearer_token", r"(?i:bearer)\s+(?P<s>[A-Za-z0-9\-._~+/]{16,}=*)", "(?i)bearer"),
    _kind(
        "basic_auth",
        r"(?i:basic)\s+(?P<s>[A-Za-z0-9+/]{6,}={0,2})(?![A-Za-z0-9+/=])",
        "(?i)basic",
        _basic_ok,
    ),
    _kind(
        "jwt",
        r"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{6,}\.eyJ[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]*",
        "eyJ",
    ),
    _kind("anthropic_key", r"sk-ant-[A-Za-z0-9_\-]{20,}", "sk-ant-"),
    _kind("openai_key", r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}", "sk-"),
    _kind(
        "stripe_key",
        r"\b(?:(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}|whsec_[0-9A-Za-z]{24,})",
        "k_live_|k_test_|whsec_",
    ),
    _kind(
        "aws_access_key",
        r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[0-9A-Z]{16}\b",
        "AKIA|ASIA|ABIA|ACCA|A3T",
    ),
    _kind(
        "aws_secret_key",
        r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])",
        r"[A-Za-z0-9/+]{40}",
        _aws_secret_ok,
    ),
    _kind(
        "github_token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b",
        "gh[pousr]_|github_pat_",
    ),
    _kind("google_api_key", r"\bAIza[0-9A-Za-z_\-]{35}\b", "AIza"),
    _kind("slack_token", r"\bxox[abposr]-[A-Za-z0-9\-]{10,}", "xox"),
    _kind("email", r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}", "@"),
    _kind(
        "iban",
        r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])",
        r"[A-Z]{2}\d\d",
        _iban_ok,
    ),
    # Issuer prefixes of Visa, Mastercard, Amex, Discover, JCB and Diners keep timestamps and
    # ids (which start with 1) out; the Luhn checksum confirms the rest.
    _kind(
        "card_number",
        r"(?<![\w.,])(?:4\d{3}|5[1-5]\d{2}|2[2-7]\d{2}|3[47]\d{2}|3(?:0[0-5]|[568]\d)\d"
        r"|6(?:011|5\d{2}|4[4-9]\d))(?:[ \-]?\d){9,15}(?![\w]|[.,]\d)",
        r"\d{4}",
        _luhn_ok,
    ),
    # Area 000, 666 and 9xx, group 00 and serial 0000 are never issued.
    _kind(
        "us_ssn",
        r"(?<![\w\-])(?!000|666|9\d\d)\d{3}([\- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\w\-])",
        r"\d{3}[\- ]\d\d[\- ]\d{4}",
    ),
    # E.164 with optional grouping; NANP (415) 555-2671 / 415-555-2671; national numbers
    # with a trunk 0 in groups (020 7946 0958, 01 23 45 67 89). Separators are required
    # outside E.164, and the digit count is checked, so ids, amounts and times stay.
    _kind(
        "phone",
        r"(?<![\w+])\+[1-9](?:[ .\-]?\(?\d\)?){7,14}(?![\w]|[.,]\d)",
        r"\+\d",
        _digits_between(8, 15),
    ),
    _kind(
        "phone",
        r"(?<![\w.+\-])(?:\(\d{3}\) ?|\d{3}([.\-]))\d{3}(?(1)\1|[.\-])\d{4}(?![\w\-]|[.,]\d)",
        r"\d{3}[.\-]\d{4}",
        _nanp_ok,
    ),
    _kind(
        "phone",
        r"(?<![\w.+\-/:])0\d{1,4}(?:[ \-]\d{2,4}){1,4}(?![\w\-]|[.,:]\d)",
        r"0\d{0,4}[ \-]\d\d",
        _digits_between(10, 11),
    ),
    # key=value, key: value and JSON "key": "value" where the key names a credential.
    _kind(
        "credential",
        rf"(?i)(?:{_KEY_WORD})"
        r"(?P<q>\\?[\"'])?\s*[:=]\s*(?!\\?[\"']?\[REDACTED:)"
        r"(?:\\\"(?P<v1>(?:[^\"\\]|\\[^\"])+)\\\"|\"(?P<v2>(?:[^\"\\]|\\.)+)\""
        r"|'(?P<v3>[^'\n]+)'|(?P<v4>[^\s\"'\\,;&{}\[\]<>()]+))",
        _names_a_credential,
    ),
)

KINDS: Final = tuple(dict.fromkeys(kind.name for kind in _KINDS))
"""The names of the kinds found, as they appear in markers: ``[REDACTED:<kind>]``."""

# One loose alternative per family of kinds, in ASCII classes (Unicode classes make Rust's
# DFA several times slower); the exact patterns are compiled with re.ASCII to match.
_PREFILTERS: Final = (
    r"PRIVATE KEY",
    r"://[^\t\n\x0B\x0C\r ]*:[^\t\n\x0B\x0C\r ]*@",
    r"(?i:bearer|basic)(?-u:\s)",
    r"eyJ",
    r"sk-|[sr]k_(?:live|test)_|whsec_|AKIA|ASIA|ABIA|ACCA|A3T|gh[pousr]_|github_pat_|AIza",
    r"xox[abposr]-",
    r"[A-Za-z0-9/+]{40}",
    r"[0-9A-Za-z_.%+\-]@[A-Za-z0-9\-]",
    r"[A-Z]{2}[0-9]{2} ?[A-Z0-9]{4} ?[A-Z0-9]{4}",
    r"(?:^|[^0-9A-Za-z_.,])[0-9](?:[ \-]?[0-9]){12,18}(?:$|[^0-9A-Za-z_])",
    r"(?:^|[^0-9A-Za-z_\-])[0-9]{3}[\- ][0-9]{2}[\- ][0-9]{4}(?:$|[^0-9A-Za-z_\-])",
    r"\+[0-9][0-9 ().\-]{7}",
    r"[0-9]{3}[).\-] ?[0-9]{3}[.\-][0-9]{4}",
    r"(?:^|[^0-9A-Za-z_.+\-/:])0[0-9]{1,4}[ \-][0-9]{2}",
    rf"(?i:{_KEY_WORD})\\?[\"']?(?-u:\s)*[:=]",
)
DETECT: Final = "|".join(_PREFILTERS)
"""A pattern (Rust ``regex`` syntax, for polars) that every cell holding a secret matches."""

_NOT_VALUES: Final = frozenset({"null", "true", "false", "none", "", "*", "***", "****"})


def _marker(name: str) -> str:
    return f"[REDACTED:{name}]"


def _replace_credential(match: re.Match[str]) -> str:
    # The word must start the key, follow a separator or a camelCase hump (bypass=, oauth=
    # and tokens= are not credentials).
    text, start = match.string, match.start()
    before = text[start - 1] if start else " "
    if before.isascii() and before.isalnum() and not (before.islower() and text[start].isupper()):
        return match.group(0)
    for group in ("v1", "v2", "v3", "v4"):
        value = match.group(group)
        if value is not None:
            break
    if value.lower() in _NOT_VALUES:
        return match.group(0)
    whole = match.group(0)
    offset = match.start()
    begin, end = match.start(group) - offset, match.end(group) - offset
    marker = _marker("credential")
    if group == "v4" and match.group("q"):
        quote = match.group("q")[:-1] + '"'  # a bare JSON value becomes a JSON string
        marker = f"{quote}{marker}{quote}"
    return whole[:begin] + marker + whole[end:]


def _replacer(kind: _Kind) -> Callable[[re.Match[str]], str]:
    marker = _marker(kind.name)
    if kind.name == "credential":
        return _replace_credential
    grouped = "s" in kind.pattern.groupindex

    def replace(match: re.Match[str]) -> str:
        secret = match.group("s") if grouped else match.group(0)
        if kind.check is not None and not kind.check(secret):
            return match.group(0)
        if not grouped:
            return marker
        whole, offset = match.group(0), match.start()
        return whole[: match.start("s") - offset] + marker + whole[match.end("s") - offset :]

    return replace


_REPLACERS: Final = tuple((kind.gate, kind.pattern, _replacer(kind)) for kind in _KINDS)


def redact_text(text: str, *, bare_numbers: bool = True) -> str:
    """Replace secrets and personal data in ``text`` with markers like ``[REDACTED:email]``.

    Args:
        text: The text to redact.
        bare_numbers: Whether a text made of digits alone may be a card number. Ids and labels
            pass ``False``: a numeric id of 16 digits passes the Luhn check one time in ten.

    Example:
        >>> redact_text("mysql://app:hunter2@db:3306/shop")
        'mysql://app:[REDACTED:url_password]@db:3306/shop'
    """
    number = not bare_numbers and text.isdigit()
    for kind, (gate, pattern, replace) in zip(_KINDS, _REPLACERS, strict=True):
        if gate(text) and not (number and kind.name == "card_number"):
            text = pattern.sub(replace, text)
    return text


def redact_texts(texts: Collection[str], *, bare_numbers: bool = True) -> dict[str, str]:
    """``redact_text`` of each text, as a dict; the same results, found faster.

    ``redact_text`` tries every kind in turn, each behind a cheap gate (a regex search) that
    must pass before its pattern runs: some twenty Python searches a text. Here the gates that
    are plain regexes run over all the texts at once in polars (same patterns; on ASCII text
    Rust's and Python's ASCII-mode regexes agree), and a text then runs, in ``redact_text``'s
    order, only the kinds whose gate passed. Once a kind has changed the text, later gates are
    tested on the new text in Python, as ``redact_text`` does. Non-ASCII texts, and any gate
    polars cannot run, take ``redact_text``'s own path.
    """
    out: dict[str, str] = {}
    ascii_texts = []
    for text in texts:
        if text.isascii():
            ascii_texts.append(text)
        else:
            out[text] = redact_text(text, bare_numbers=bare_numbers)
    if not ascii_texts:
        return out
    column = pl.Series("t", ascii_texts, dtype=pl.String)
    passed = pl.select(
        column.str.contains(gate).alias(str(n)) if gate is not None else pl.lit(True).alias(str(n))
        for n, gate in enumerate(_POLARS_GATES)
    )
    gates = zip(*(passed.to_series(n).to_list() for n in range(passed.width)), strict=True)
    for text, maybe in zip(ascii_texts, gates, strict=True):
        out[text] = _redact_gated(text, maybe, bare_numbers)
    return out


def _redact_gated(text: str, maybe: tuple[bool, ...], bare_numbers: bool) -> str:
    """``redact_text``, skipping the kinds whose gate failed on ``text`` itself."""
    number = not bare_numbers and text.isdigit()
    unchanged = True
    for kind, (gate, pattern, replace), may in zip(_KINDS, _REPLACERS, maybe, strict=True):
        if unchanged and not may:
            continue  # the gate did not pass on this very text
        if gate(text) and not (number and kind.name == "card_number"):
            redacted = pattern.sub(replace, text)
            if unchanged and redacted != text:
                unchanged = False
            text = redacted
    return text


def _polars_gate(gate: Callable[[str], object]) -> str | None:
    """A gate as a pattern polars runs (an ASCII regex's ``search``), or ``None``: it stays in
    Python."""
    compiled = getattr(gate, "__self__", None)
    if not (
        isinstance(compiled, re.Pattern)
        and getattr(gate, "__name__", "") == "search"
        and compiled.flags & re.ASCII
        and not compiled.flags & ~(re.ASCII | re.UNICODE | re.IGNORECASE)
    ):
        return None
    pattern = compiled.pattern
    if compiled.flags & re.IGNORECASE:
        pattern = f"(?i:{pattern})"
    try:
        pl.select(pl.lit("probe").str.contains(pattern))
    except pl.exceptions.PolarsError:
        return None
    return pattern


_POLARS_GATES: Final = tuple(_polars_gate(kind.gate) for kind in _KINDS)


def secret_kinds(text: str, *, bare_numbers: bool = True) -> list[str]:
    """The kinds of secret ``text`` holds, as ``redact_text`` would mark them (empty if none).

    Args:
        text: The text to screen.
        bare_numbers: As for ``redact_text``.
    """
    found = []
    for kind, (gate, pattern, replace) in zip(_KINDS, _REPLACERS, strict=True):
        if not gate(text) or (not bare_numbers and kind.name == "card_number" and text.isdigit()):
            continue
        redacted = pattern.sub(replace, text)
        if redacted != text:
            text = redacted
            if kind.name not in found:
                found.append(kind.name)
    return found


def redact_json(encoded: str) -> str:
    """Redact a JSON document's text, and keep it valid JSON (strings are redacted one by one
    when a marker would break the document)."""
    redacted = redact_text(encoded)
    if redacted == encoded:
        return encoded
    try:
        json.loads(redacted)
    except ValueError:
        return json.dumps(_redact_value(json.loads(encoded)), sort_keys=True, separators=(",", ":"))
    return redacted


def _redact_value(value: object) -> object:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [_redact_value(v) for v in value]
    if isinstance(value, dict):
        return {redact_text(k): _redact_value(v) for k, v in value.items()}
    return value


def flag_cells(column: pl.Series, *, distinct: bool = False) -> pl.Series | None:
    """Where ``column`` (strings) may hold a secret, by the loose ``DETECT`` pattern.

    Args:
        column: The strings to screen.
        distinct: The column repeats few values: screen each distinct value once.

    Returns:
        A boolean mask, or ``None`` when no cell can hold a secret (the common case).
    """
    if distinct:
        values = column.unique().drop_nulls()
        suspects = values.filter(values.str.contains(DETECT))
        return None if suspects.is_empty() else column.is_in(suspects).fill_null(False)
    mask = column.str.contains(DETECT).fill_null(False)
    return mask if mask.any() else None


def redact_frame(
    frame: pl.DataFrame, columns: Sequence[str] | None = None, *, labels: Sequence[str] = ()
) -> pl.DataFrame:
    """Redact every string column (or ``columns``) of ``frame``.

    One vectorised pass finds the cells that may hold a secret; only those are rewritten, each
    distinct text once (telemetry repeats texts: spans flagged for one id shape often share
    whole attribute objects).

    Args:
        frame: The rows to redact.
        columns: The columns to redact; every string column when ``None``.
        labels: Columns of short labels or ids that repeat (session ids, model names):
            screened once per distinct value, and a value of digits alone is an id there,
            not a card number.
    """
    names = [c for c in columns or frame.columns if frame.schema[c] == pl.String]
    if not names or frame.is_empty():
        return frame
    updates = []
    for name in names:
        column = frame.get_column(name)
        label = name in labels
        mask = flag_cells(column, distinct=label)
        if mask is None:
            continue
        rows = mask.arg_true()
        flagged = column.gather(rows).to_list()
        redacted = redact_texts(set(flagged), bare_numbers=not label)
        if all(text == out for text, out in redacted.items()):
            continue  # flagged, but nothing in it is a secret
        fixed = pl.Series([redacted[text] for text in flagged], dtype=pl.String)
        updates.append(column.scatter(rows, fixed))
    return frame.with_columns(updates) if updates else frame
