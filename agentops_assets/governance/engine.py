"""Policy evaluation: a folder of Rego policies judges one agent action, failing closed.

A :class:`PolicyBundle` compiles every ``*.rego`` file of a folder with regopy (rego-cpp) and
answers :meth:`PolicyBundle.evaluate` with a :class:`Decision`. Whatever goes wrong (a policy
that does not compile, an engine error, an undefined or malformed result, a timeout, an input
that is not JSON) the answer is ``deny`` in the red zone with the reason, never an allow and
never an exception::

    bundle = PolicyBundle.load("policies")
    decision = bundle.evaluate({"agent_type": "KYCAgent", "kind": "tool_call", ...},
                               {"stats": {"score_risk": {"override_rate": 0.3, "count": 40}}})

The query is ``x := <entrypoint>`` and the binding ``x`` is read: querying the rule bare gives
``undefined`` when only a default applies, and regopy's ``Output.expressions()`` aborts the
process on that (STACK_NOTES.md), so this module never touches regopy's ``Node`` API.

**Timeouts.** rego-cpp cannot be interrupted. Each evaluation runs on a worker thread (ctypes
releases the GIL); when the deadline passes the caller gets ``deny`` at once, the worker and its
interpreter are abandoned (they finish in the background, their result is discarded) and the next
evaluation compiles a fresh interpreter. A runaway policy therefore still burns one core until it
ends; after :data:`MAX_RUNAWAY` abandoned evaluations are still running, evaluations deny at once
instead of starting more.
"""

from __future__ import annotations

import hashlib
import queue
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, Final, Literal

import orjson
import regopy

DEFAULT_ENTRYPOINT: Final = "data.agentops.governance.result"
DEFAULT_TIMEOUT_S: Final = 1.0
MAX_RUNAWAY: Final = 2
_BINDING: Final = "x"
_DATA_CACHE: Final = 4  # compiled interpreters kept, one per distinct data document
_DECISIONS: Final = ("allow", "review", "deny")
_ZONES: Final = ("green", "yellow", "red")
# Rego comments and strings, so that references to ``input`` are looked for in code only.
_COMMENT_OR_STRING = re.compile(r'"(?:\\.|[^"\\])*"|`[^`]*`|#[^\n]*')
_INPUT_FIELD = re.compile(r'(?<![.\w])input(?![\w])(?:\.([A-Za-z_]\w*)|\[\s*"([^"\\]+)"\s*\])?')
_KEY_STRING = re.compile(r'"[A-Za-z_][\w-]*"')
_REGO_ERROR = re.compile(
    r"\(error \d+:(?P<file>[^|\s]+)\|(?P<offset>\d+)\|\d+\s*\(errormsg \d+:(?P<message>[^)]*)\)"
)

DecisionKind = Literal["allow", "review", "deny"]
Zone = Literal["green", "yellow", "red"]


class PolicyBundleError(Exception):
    """A policy folder that cannot be loaded or compiled."""


@dataclass(frozen=True)
class Decision:
    """The verdict on one action, with the policy bundle revision that gave it.

    ``error`` is set (and ``decision`` is ``deny``) when the verdict comes from failing closed
    rather than from the policies.
    """

    decision: DecisionKind
    zone: Zone
    reasons: tuple[str, ...]
    rules: tuple[str, ...]
    obligations: Mapping[str, Any] = field(default_factory=dict)
    revision: str = ""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The decision as a JSON-ready dict (the shape the CLI prints and the ledger stores)."""
        return {
            "decision": self.decision,
            "zone": self.zone,
            "reasons": list(self.reasons),
            "rules": list(self.rules),
            "obligations": dict(self.obligations),
            "revision": self.revision,
            "error": self.error,
        }


def default_policy_folder() -> Path:
    """The folder of the shipped default policies (the ``policies`` package)."""
    return Path(str(files("policies")))


def bundle_revision(sources: Mapping[str, str]) -> str:
    """SHA-256 over the sorted file names and contents (length-prefixed, so unambiguous)."""
    digest = hashlib.sha256()
    for name in sorted(sources):
        for part in (name.encode(), sources[name].encode()):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return digest.hexdigest()


def input_fields(sources: Mapping[str, str]) -> frozenset[str] | None:
    """The top-level ``input`` fields the policies refer to (``input.x``, ``input["x"]``), or
    ``None`` when some policy reads ``input`` as a whole (``input[k]``, ``some k in input``)
    and every field may matter. Comments and strings are not code and are skipped."""
    fields: set[str] = set()
    for source in sources.values():
        code = _COMMENT_OR_STRING.sub(_code_only, source)
        for match in _INPUT_FIELD.finditer(code):
            field_name = match[1] or match[2]
            if field_name is None:
                return None
            fields.add(field_name)
    return frozenset(fields)


def _code_only(match: re.Match[str]) -> str:
    """A comment goes; a string keeps its text only when it could be a key (``"kind"``)."""
    token = match[0]
    if token[0] == "#":
        return ""
    return token if _KEY_STRING.fullmatch(token) else '""'


def _deny(error: str, revision: str) -> Decision:
    return Decision("deny", "red", (f"Denied because {error}",), (), {}, revision, error)


class PolicyBundle:
    """The compiled ``*.rego`` files of one folder; see the module docstring."""

    def __init__(
        self,
        sources: Mapping[str, str],
        *,
        entrypoint: str = DEFAULT_ENTRYPOINT,
        load_error: str | None = None,
        revision: str | None = None,
    ) -> None:
        self.sources: Mapping[str, str] = dict(sources)
        self.entrypoint = entrypoint
        self.revision = revision or bundle_revision(self.sources)
        self.load_error = load_error
        self.input_fields = input_fields(self.sources)
        self._lock = threading.Lock()
        self._compiled: OrderedDict[str, _Compiled] = OrderedDict()
        self._worker: _Worker | None = None
        self._runaway: list[Future[Any]] = []

    @classmethod
    def load(
        cls,
        folder: str | Path | None = None,
        *,
        entrypoint: str = DEFAULT_ENTRYPOINT,
        on_error: Literal["raise", "deny"] = "raise",
        revision_files: Mapping[str, str] | None = None,
    ) -> PolicyBundle:
        """Read and compile every ``*.rego`` file of ``folder`` (the shipped policies if None).

        Args:
            folder: the policy folder.
            entrypoint: the rule whose value is the decision document.
            on_error: ``"raise"`` raises :class:`PolicyBundleError` naming file and line for a
                folder that does not compile; ``"deny"`` returns a bundle whose every
                evaluation is ``deny`` with that error (for sensors and back-tests).
            revision_files: Other files the decisions depend on (name to content, e.g. the
                capability registry), hashed into the revision with the policies.
        """
        folder = Path(folder) if folder is not None else default_policy_folder()
        extra = dict(revision_files or {})
        try:
            sources = _read_sources(folder)
            bundle = cls(
                sources, entrypoint=entrypoint, revision=bundle_revision({**extra, **sources})
            )
            bundle._compiled_for({})  # compile now, so a broken folder fails at load
        except PolicyBundleError as exc:
            if on_error == "raise":
                raise
            try:
                sources = _readable_sources(folder)
            except PolicyBundleError:
                sources = {}
            return cls(
                sources,
                entrypoint=entrypoint,
                load_error=str(exc).rstrip("."),
                revision=bundle_revision({**extra, **sources}),
            )
        return bundle

    def evaluate(
        self,
        input: Mapping[str, Any],
        data: Mapping[str, Any] | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> Decision:
        """Judge one action document; never raises, fails closed to ``deny``.

        Args:
            input: the action document (``input`` in Rego).
            data: the base document (``data`` in Rego, e.g. ``{"stats": {...}}``); one
                compiled interpreter is kept per distinct data document.
            timeout_s: the deadline for this evaluation in seconds.
        """
        try:
            data_json = _canonical(data or {})
        except (TypeError, orjson.JSONEncodeError) as exc:
            return _deny(f"the data document is not JSON ({exc}).", self.revision)
        return self._evaluate(input, data_json, timeout_s)

    def evaluate_many(
        self,
        inputs: Iterable[Mapping[str, Any]],
        data: Mapping[str, Any] | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> list[Decision]:
        """Judge many action documents (a back-test), each distinct document only once.

        Only the top-level fields the policies read (:attr:`input_fields`) are evaluated, so
        two documents that differ in nothing the policies look at (an event id, a time) are
        one evaluation. Documents are the same when the canonical JSON (sorted keys) of those
        fields is; the result has one decision per input, in order.
        """
        try:
            data_json = _canonical(data or {})
        except (TypeError, orjson.JSONEncodeError) as exc:
            denial = _deny(f"the data document is not JSON ({exc}).", self.revision)
            return [denial for _ in inputs]
        seen: dict[bytes, Decision] = {}
        decisions = []
        fields = self.input_fields
        for document in inputs:
            if fields is not None and isinstance(document, Mapping):
                document = {k: v for k, v in document.items() if k in fields}
            try:
                key = hashlib.blake2b(_canonical(document), digest_size=16).digest()
            except (TypeError, orjson.JSONEncodeError):
                decisions.append(self._evaluate(document, data_json, timeout_s))
                continue
            if key not in seen:
                seen[key] = self._evaluate(document, data_json, timeout_s)
            decisions.append(seen[key])
        return decisions

    def _evaluate(self, input: Any, data_json: bytes, timeout_s: float) -> Decision:
        if self.load_error is not None:
            return _deny(f"the policy bundle does not compile: {self.load_error}.", self.revision)
        try:
            input_json = _canonical(input)
        except (TypeError, orjson.JSONEncodeError) as exc:
            return _deny(f"the input is not a JSON document ({exc}).", self.revision)
        if not isinstance(input, Mapping):
            return _deny("the input is not a JSON object.", self.revision)
        with self._lock:
            self._runaway = [job for job in self._runaway if not job.done()]
            if len(self._runaway) >= MAX_RUNAWAY:
                return _deny(
                    f"{len(self._runaway)} timed-out evaluations are still running.",
                    self.revision,
                )
            try:
                compiled = self._compiled_for(data_json)
            except PolicyBundleError as exc:
                return _deny(f"the policies do not compile with this data: {exc}", self.revision)
            if self._worker is None:
                self._worker = _Worker()
            job = self._worker.submit(lambda: compiled.query(input_json))
            try:
                outcome = job.result(timeout=timeout_s)
            except FutureTimeout:
                # The interpreter is busy until the runaway query ends: abandon it and the worker.
                self._runaway.append(job)
                self._worker.stop()
                self._worker = None
                self._compiled.pop(compiled.key, None)
                return _deny(f"the evaluation took longer than {timeout_s:g} s.", self.revision)
            except Exception as exc:  # noqa: BLE001 - fail closed on anything the engine raises
                return _deny(f"the Rego engine failed ({_short(exc)}).", self.revision)
        return _decision(outcome, self.revision)

    def _compiled_for(self, data: Mapping[str, Any] | bytes) -> _Compiled:
        data_json = data if isinstance(data, bytes) else _canonical(data)
        key = hashlib.sha256(data_json).hexdigest()
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = _Compiled(key, self.sources, data_json, self.entrypoint)
            self._compiled[key] = compiled
            while len(self._compiled) > _DATA_CACHE:
                self._compiled.popitem(last=False)
        else:
            self._compiled.move_to_end(key)
        return compiled

    def copy(self) -> PolicyBundle:
        """A bundle of the same policies and revision with its own interpreters and worker,
        for evaluating in parallel (one bundle evaluates one document at a time)."""
        return PolicyBundle(
            self.sources,
            entrypoint=self.entrypoint,
            load_error=self.load_error,
            revision=self.revision,
        )

    def close(self) -> None:
        """Stop the worker thread (a new one starts if the bundle is used again)."""
        with self._lock:
            if self._worker is not None:
                self._worker.stop()
                self._worker = None


class _Compiled:
    """One interpreter with the policies and one data document built into a regopy bundle."""

    def __init__(self, key: str, sources: Mapping[str, str], data_json: bytes, entrypoint: str):
        self.key = key
        self._interpreter = regopy.Interpreter()
        self._interpreter.log_level = regopy.LogLevel.NONE  # errors come back as exceptions
        # Built-in errors (division by zero, bad arguments) are errors, not silent undefined.
        self._interpreter.strict_built_in_errors = True
        try:
            for name, source in sorted(sources.items()):
                self._interpreter.add_module(name, source)
            self._interpreter.add_data_json(data_json.decode())
            self._bundle = self._interpreter.build(f"{_BINDING} := {entrypoint}")
        except regopy.RegoError as exc:
            raise PolicyBundleError(_located(exc, sources)) from exc
        if not self._bundle.ok():
            raise PolicyBundleError(f"rego-cpp could not build the bundle for {entrypoint}.")

    def query(self, input_json: bytes) -> tuple[bool, Any]:
        """(ok, bindings of the first result) for one input document."""
        self._interpreter.set_input_term(input_json.decode())
        output = self._interpreter.query_bundle(self._bundle)
        if not output.ok():
            return False, None
        return True, output.results[0].bindings if output.results else {}


class _Worker:
    """A daemon thread running one job at a time; a stuck job never blocks interpreter exit."""

    def __init__(self) -> None:
        self._inbox: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        threading.Thread(target=self._run, name="rego-eval", daemon=True).start()

    def submit(self, call: Callable[[], Any]) -> Future[Any]:
        job: Future[Any] = Future()
        self._inbox.put((call, job))
        return job

    def stop(self) -> None:
        self._inbox.put(None)

    def _run(self) -> None:
        while (item := self._inbox.get()) is not None:
            call, job = item
            try:
                job.set_result(call())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's future
                job.set_exception(exc)


def _decision(outcome: tuple[bool, Any], revision: str) -> Decision:
    ok, bindings = outcome
    if not ok:
        return _deny(
            "the Rego engine reported an evaluation error (e.g. conflicting values for a "
            "complete rule, or a failing built-in such as division by zero).",
            revision,
        )
    if _BINDING not in bindings:
        return _deny("the policies left the decision undefined.", revision)
    result = bindings[_BINDING]
    problem = _shape_problem(result)
    if problem is not None:
        return _deny(f"the policy result is malformed: {problem}.", revision)
    return Decision(
        decision=result["decision"],
        zone=result["zone"],
        reasons=tuple(result.get("reasons", ())),
        rules=tuple(result.get("rules", ())),
        obligations=dict(result.get("obligations", {})),
        revision=revision,
    )


def _shape_problem(result: Any) -> str | None:
    """What is wrong with a policy result, or None when it has the decision document's shape."""
    if not isinstance(result, dict):
        return f"expected an object, got {type(result).__name__}"
    if result.get("decision") not in _DECISIONS:
        return f"decision {result.get('decision')!r} is not one of {', '.join(_DECISIONS)}"
    if result.get("zone") not in _ZONES:
        return f"zone {result.get('zone')!r} is not one of {', '.join(_ZONES)}"
    for name in ("reasons", "rules"):
        value = result.get(name, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            return f"{name} is not a list of strings"
    if not isinstance(result.get("obligations", {}), dict):
        return "obligations is not an object"
    return None


def _read_sources(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        raise PolicyBundleError(f"{folder}: no such policy folder.")
    sources = _readable_sources(folder)
    if not sources:
        raise PolicyBundleError(f"{folder}: no *.rego policy files.")
    return sources


def _readable_sources(folder: Path) -> dict[str, str]:
    sources = {}
    for path in sorted(folder.glob("*.rego")) if folder.is_dir() else ():
        try:
            sources[path.name] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyBundleError(f"{path}: cannot be read ({exc}).") from exc
    return sources


def _located(exc: regopy.RegoError, sources: Mapping[str, str]) -> str:
    """rego-cpp's error sequence as ``file:line:column: message`` sentences."""
    found = []
    for match in _REGO_ERROR.finditer(str(exc)):
        name, offset = match["file"], int(match["offset"])
        source = sources.get(name, "")
        line = source.count("\n", 0, offset) + 1
        column = offset - (source.rfind("\n", 0, offset) + 1) + 1
        found.append(f"{name}:{line}:{column}: {match['message'].strip()}")
    return "; ".join(found) if found else _short(exc)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


def _canonical(document: Any) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
