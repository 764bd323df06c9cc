"""Identifiers, timestamps, planted secrets and garbled text, all from seeded generators."""

from __future__ import annotations

import datetime as dt
import random
import string
from typing import Final

_MASK: Final = (1 << 64) - 1
_EPOCH: Final = dt.date(1970, 1, 1)


def mix64(x: int) -> int:
    """SplitMix64 finaliser: a bijection on 64-bit ints, so distinct inputs give distinct ids."""
    z = (x + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


class IdSource:
    """Unique, random-looking span, trace and session ids from counters.

    Good events use even counters and malformed records odd ones, so the two never share an id.
    """

    def __init__(self, salt: int) -> None:
        self._salt = salt & _MASK
        self._span = 0
        self._bad = 0
        self._trace = 0
        self._session = 0

    def span(self) -> str:
        self._span += 1
        return f"{mix64(self._salt + 2 * self._span):016x}"

    def bad_span(self) -> str:
        self._bad += 1
        return f"{mix64(self._salt + 2 * self._bad + 1):016x}"

    def trace(self) -> str:
        self._trace += 1
        hi = mix64(self._salt ^ 0x5A5A5A5A5A5A5A5A ^ self._trace)
        return f"{hi:016x}{mix64(hi):016x}"

    def session(self) -> str:
        self._session += 1
        return f"sess_{mix64(self._salt ^ 0x3C3C3C3C3C3C3C3C ^ self._session):016x}"


class Clock:
    """ISO 8601 UTC text (microseconds, ``Z``) for microsecond epoch timestamps."""

    def __init__(self) -> None:
        self._dates: dict[int, str] = {}

    def iso(self, us: int) -> str:
        sec, frac = divmod(us, 1_000_000)
        day, sod = divmod(sec, 86_400)
        date = self._dates.get(day)
        if date is None:
            date = self._dates[day] = (_EPOCH + dt.timedelta(days=day)).isoformat()
        hour, rest = divmod(sod, 3600)
        minute, second = divmod(rest, 60)
        return f"{date}T{hour:02d}:{minute:02d}:{second:02d}.{frac:06d}Z"


def day_start_us(day: dt.date) -> int:
    """Microseconds since the epoch at 00:00 UTC of ``day``."""
    return (day - _EPOCH).days * 86_400_000_000


_ALNUM: Final = string.ascii_letters + string.digits
_URLSAFE: Final = _ALNUM + "-_"
_AWS: Final = string.ascii_uppercase + "234567"
_FIRST: Final = ("jane", "omar", "li", "sofia", "raj", "emma", "lucas", "amara", "noah", "yuki")
_LAST: Final = ("doe", "haddad", "wei", "rossi", "kumar", "schmidt", "silva", "mensah", "kim")
_DOMAINS: Final = ("gmail.com", "outlook.com", "example-corp.com", "acme.io", "yahoo.co.uk")


def _rand(r: random.Random, alphabet: str, n: int) -> str:
    return "".join(r.choices(alphabet, k=n))


def luhn_card(r: random.Random) -> str:
    """A Luhn-valid 16-digit Visa or Mastercard number, grouped by four."""
    if r.random() < 0.3:
        return "4111 1111 1111 1111"
    digits = [4] if r.random() < 0.6 else [5, r.randint(1, 5)]
    digits += [r.randint(0, 9) for _ in range(15 - len(digits))]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    digits.append((10 - total % 10) % 10)
    text = "".join(map(str, digits))
    sep = r.choice((" ", "-", ""))
    return sep.join(text[i : i + 4] for i in range(0, 16, 4))


def _jwt(r: random.Random) -> str:
    head = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    return f"{head}.eyJ{_rand(r, _URLSAFE, 46)}.{_rand(r, _URLSAFE, 43)}"


SECRET_KINDS: Final = (
    "email",
    "card_number",
    "openai_key",
    "anthropic_key",
    "aws_access_key",
    "github_token",
    "bearer_token",
)
_SECRET_WEIGHTS: Final = (30, 20, 10, 10, 10, 10, 10)


def secret(r: random.Random) -> tuple[str, str]:
    """A planted secret or personal datum in a short sentence, and its kind."""
    (kind,) = r.choices(SECRET_KINDS, weights=_SECRET_WEIGHTS)
    if kind == "email":
        addr = f"{r.choice(_FIRST)}.{r.choice(_LAST)}{r.randint(1, 99)}@{r.choice(_DOMAINS)}"
        return kind, f"customer wrote from {addr}"
    if kind == "card_number":
        return (
            kind,
            f"customer pasted card {luhn_card(r)} exp 0{r.randint(1, 9)}/2{r.randint(7, 9)}",
        )
    if kind == "openai_key":
        return kind, f"config has OPENAI_API_KEY=sk-proj-{_rand(r, _URLSAFE, 64)}"
    if kind == "anthropic_key":
        return kind, f"env ANTHROPIC_API_KEY=sk-ant-api03-{_rand(r, _URLSAFE, 93)}AA"
    if kind == "aws_access_key":
        return kind, f"aws_access_key_id = AKIA{_rand(r, _AWS, 16)}"
    if kind == "github_token":
        return kind, f"git remote uses token ghp_{_rand(r, _ALNUM, 36)}"
    return kind, f"header Authorization: Bearer {_jwt(r)}"


_MOJIBAKE: Final = ("Ã¢â‚¬â„¢", "Ã©", "ï»¿", "\ufffd\ufffd", "â€œ", "Â\xa0")


def garble(r: random.Random, text: str | None) -> str:
    """Empty, mangled or binary-looking context, as a broken upstream would produce."""
    roll = r.random()
    if roll < 0.4 or not text:
        return ""
    if roll < 0.75:
        chars = list(text[: max(4, len(text) * 2 // 3)])
        for i in range(0, len(chars), 3):
            chars[i] = r.choice(_MOJIBAKE)
        return "".join(chars)
    return "H4sIAAAAAAAA/" + _rand(r, _ALNUM + "+/", 40) + "\ufffd"
