"""The policy engine: real Rego evaluation of the shipped policies, and failing closed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agentops_assets.governance.engine import (
    Decision,
    PolicyBundle,
    PolicyBundleError,
    bundle_revision,
    default_policy_folder,
    input_fields,
)

SUPPORT = {
    "tools": ["zendesk.*", "kb.search", "orders.refund_request"],
    "data_zones": ["public", "internal"],
    "max_amount_usd": 500,
}


def action(**changes: object) -> dict[str, object]:
    document: dict[str, object] = {
        "agent_id": "support-1",
        "agent_type": "SupportAgent",
        "kind": "tool_call",
        "action": "zendesk.reply",
        "target": "ticket-42",
        "amount_usd": 0,
        "data_zone": "internal",
        "context": {"capabilities": SUPPORT, "budget": {"status": "ok"}, "drift": []},
    }
    document.update(changes)
    return document


def context(**changes: object) -> dict[str, object]:
    return {"capabilities": SUPPORT, "budget": {"status": "ok"}, "drift": [], **changes}


def stats(override_rate: float, count: int, failure_rate: float = 0.0) -> dict[str, object]:
    return {
        "stats": {
            "zendesk.reply": {
                "override_rate": override_rate,
                "failure_rate": failure_rate,
                "count": count,
            }
        }
    }


@pytest.fixture(scope="module")
def shipped() -> PolicyBundle:
    return PolicyBundle.load()


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


# --- the shipped policies, one zone at a time --------------------------------------------------


def test_green_zone_allows_an_action_within_capabilities(shipped: PolicyBundle) -> None:
    decision = shipped.evaluate(action(), stats(0.05, 100))
    assert (decision.decision, decision.zone, decision.rules) == ("allow", "green", ())
    assert decision.obligations == {}
    assert decision.error is None
    assert decision.revision == shipped.revision
    assert len(decision.revision) == 64


def test_yellow_zone_reviews_after_the_fact_on_a_budget_breach(shipped: PolicyBundle) -> None:
    decision = shipped.evaluate(action(context=context(budget={"status": "breach"})))
    assert (decision.decision, decision.zone) == ("review", "yellow")
    assert decision.rules == ("budget_breach",)
    assert decision.obligations == {"approvals": 0, "review": "after", "sample_rate": 0.05}
    assert decision.reasons == ("Agent support-1 is over its budget.",)


def test_open_critical_drift_is_yellow_but_warnings_and_closed_findings_are_not(
    shipped: PolicyBundle,
) -> None:
    critical = shipped.evaluate(action(context=context(drift=[{"severity": "critical"}])))
    assert (critical.zone, critical.rules) == ("yellow", ("critical_drift_open",))
    quiet = shipped.evaluate(
        action(
            context=context(
                drift=[{"severity": "warning"}, {"severity": "critical", "status": "resolved"}]
            )
        )
    )
    assert (quiet.decision, quiet.zone) == ("allow", "green")


def test_red_zone_needs_one_approval_for_an_amount_above_the_types_max(
    shipped: PolicyBundle,
) -> None:
    decision = shipped.evaluate(action(action="orders.refund_request", amount_usd=750))
    assert (decision.decision, decision.zone) == ("review", "red")
    assert decision.rules == ("amount_above_max",)
    assert decision.obligations == {"approvals": 1, "review": "before"}
    assert "750" in decision.reasons[0] and "500" in decision.reasons[0]
    at_the_limit = shipped.evaluate(action(action="orders.refund_request", amount_usd=500))
    assert at_the_limit.zone == "green"


def test_tool_outside_capabilities_is_denied(shipped: PolicyBundle) -> None:
    decision = shipped.evaluate(action(action="iam.create_access_key"))
    assert (decision.decision, decision.zone) == ("deny", "red")
    assert decision.rules == ("tool_not_in_capabilities",)
    assert decision.error is None  # denied by a policy, not by failing closed
    assert "iam.create_access_key" in decision.reasons[0]


def test_glob_capabilities_match_like_fnmatch(shipped: PolicyBundle) -> None:
    assert shipped.evaluate(action(action="zendesk.get_ticket")).decision == "allow"
    everything = {"tools": ["*"]}
    anything = shipped.evaluate(action(action="a.b.c", context=context(capabilities=everything)))
    assert anything.decision == "allow"


def test_restricted_data_zone_outside_the_types_zones_is_denied(shipped: PolicyBundle) -> None:
    decision = shipped.evaluate(action(data_zone="restricted"))
    assert (decision.decision, decision.rules) == ("deny", ("data_zone_not_allowed",))
    finance = {"tools": ["zendesk.*"], "data_zones": ["public", "internal", "restricted"]}
    allowed = shipped.evaluate(
        action(data_zone="restricted", context=context(capabilities=finance))
    )
    assert allowed.decision == "allow"


def test_a_type_without_a_registry_entry_may_call_no_tool(shipped: PolicyBundle) -> None:
    decision = shipped.evaluate(action(context=context(capabilities=None)))
    assert (decision.decision, decision.rules) == ("deny", ("no_capability_entry",))


def test_an_action_document_without_its_fields_is_denied(shipped: PolicyBundle) -> None:
    decision = shipped.evaluate({"agent_id": "x", "kind": "tool_call"})
    assert decision.decision == "deny"
    assert decision.rules == ("malformed_input",)


def test_deny_outranks_red_and_yellow_and_every_reason_is_kept(shipped: PolicyBundle) -> None:
    decision = shipped.evaluate(
        action(
            action="iam.create_access_key",
            amount_usd=10_000,
            context=context(budget={"status": "breach"}),
        )
    )
    assert (decision.decision, decision.zone) == ("deny", "red")
    assert decision.rules == ("amount_above_max", "budget_breach", "tool_not_in_capabilities")
    assert len(decision.reasons) == 3


# --- evidence moves a zone ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override_rate", "count", "zone"),
    [(0.10, 100, "green"), (0.35, 100, "yellow"), (0.35, 19, "green"), (0.21, 20, "yellow")],
)
def test_an_action_humans_keep_overriding_moves_from_green_to_yellow(
    shipped: PolicyBundle, override_rate: float, count: int, zone: str
) -> None:
    decision = shipped.evaluate(action(), stats(override_rate, count))
    assert decision.zone == zone
    assert ("often_overridden" in decision.rules) == (zone == "yellow")


def test_a_frequently_failing_action_is_yellow(shipped: PolicyBundle) -> None:
    decision = shipped.evaluate(action(), stats(0.0, 50, failure_rate=0.5))
    assert decision.rules == ("often_failing",)
    assert "50%" in decision.reasons[0]


# --- failing closed ----------------------------------------------------------------------------

ALLOW = '{"decision": "allow", "zone": "green", "reasons": [], "rules": [], "obligations": {}}'

BROKEN = {
    # Two values for one complete rule: an evaluation error in Rego.
    "conflict": (
        'package agentops.governance\n\nzone := "green"\n\nzone := "red" if input.bad\n\n'
        'result := {"decision": "allow", "zone": zone, "reasons": [], "rules": [],'
        ' "obligations": {}}\n'
    ),
    # A built-in that fails (division by zero) is an error, not a silent undefined.
    "division": (
        "package agentops.governance\n\nratio := 1 / input.divisor\n\n"
        'result := {"decision": "allow", "zone": "green", "reasons": [sprintf("%v", [ratio])],'
        ' "rules": [], "obligations": {}}\n'
    ),
    # No rule gives a result when the input says so.
    "undefined": f"package agentops.governance\n\nresult := {ALLOW} if not input.bad\n",
    # A result of the wrong shape.
    "shape": (
        f'package agentops.governance\n\nresult := "allow" if input.bad\n\nelse := {ALLOW}\n'
    ),
    "bad_decision": (
        "package agentops.governance\n\n"
        'result := {"decision": "maybe", "zone": "green"} if input.bad\n\n'
        f"else := {ALLOW}\n"
    ),
}
EXPECTED_ERROR = {
    "conflict": "evaluation error",
    "division": "evaluation error",
    "undefined": "left the decision undefined",
    "shape": "malformed: expected an object, got str",
    "bad_decision": "malformed: decision 'maybe'",
}
BENIGN = {"conflict": {"bad": False}, "division": {"divisor": 4}}
HOSTILE = {"conflict": {"bad": True}, "division": {"divisor": 0}}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_engine_errors_undefined_and_malformed_results_deny(tmp_path: Path, case: str) -> None:
    bundle = PolicyBundle.load(write(tmp_path, {"policy.rego": BROKEN[case]}))
    benign = bundle.evaluate(BENIGN.get(case, {"bad": False}))
    assert (benign.decision, benign.error) == ("allow", None)  # the policy itself works
    denied = bundle.evaluate(HOSTILE.get(case, {"bad": True}))
    assert (denied.decision, denied.zone, denied.rules) == ("deny", "red", ())
    assert denied.error is not None and EXPECTED_ERROR[case] in denied.error
    assert denied.reasons == (f"Denied because {denied.error}",)
    assert denied.revision == bundle.revision


def test_a_syntax_error_names_file_and_line_and_a_broken_bundle_denies(tmp_path: Path) -> None:
    folder = write(
        tmp_path,
        {
            "good.rego": f"package agentops.governance\n\nresult := {ALLOW}\n",
            "bad.rego": "package agentops.extra\n\nzone := if {\n",
        },
    )
    with pytest.raises(PolicyBundleError, match=r"bad\.rego:3:"):
        PolicyBundle.load(folder)
    bundle = PolicyBundle.load(folder, on_error="deny")
    decision = bundle.evaluate(action())
    assert (decision.decision, decision.zone) == ("deny", "red")
    assert decision.error is not None and "bad.rego:3" in decision.error
    assert bundle.evaluate_many([action(), action()])[1].decision == "deny"
    (folder / "bad.rego").unlink()
    assert PolicyBundle.load(folder).evaluate(action()).decision == "allow"


def test_a_missing_or_empty_folder_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyBundleError, match="no such policy folder"):
        PolicyBundle.load(tmp_path / "absent")
    with pytest.raises(PolicyBundleError, match="no \\*.rego"):
        PolicyBundle.load(tmp_path)
    assert PolicyBundle.load(tmp_path, on_error="deny").evaluate(action()).decision == "deny"


def test_a_slow_policy_times_out_to_deny_and_the_bundle_recovers(tmp_path: Path) -> None:
    slow = (
        "package agentops.governance\n\n"
        "spread := count([x | some i in numbers.range(1, input.n); x := i * 2])\n\n"
        'result := {"decision": "allow", "zone": "green", "reasons": [sprintf("%v", [spread])],'
        ' "rules": [], "obligations": {}}\n'
    )
    bundle = PolicyBundle.load(write(tmp_path, {"slow.rego": slow}))
    assert bundle.evaluate({"n": 10}).reasons == ("10",)
    started = time.perf_counter()
    decision = bundle.evaluate({"n": 200_000}, timeout_s=0.05)
    waited = time.perf_counter() - started
    assert (decision.decision, decision.zone) == ("deny", "red")
    assert decision.error is not None and "longer than 0.05 s" in decision.error
    assert waited < 0.5  # the caller got its answer at the deadline, not when the query ended
    assert bundle.evaluate({"n": 10}, timeout_s=5).decision == "allow"
    bundle.close()


def test_inputs_that_are_not_json_objects_deny(shipped: PolicyBundle) -> None:
    assert shipped.evaluate({"action": {1, 2}}).error is not None  # type: ignore[dict-item]
    assert shipped.evaluate([action()]).decision == "deny"  # type: ignore[arg-type]
    assert shipped.evaluate(action(), {"stats": object()}).decision == "deny"


# --- revision ------------------------------------------------------------------------------------


def test_revision_is_a_hash_of_file_names_and_contents(tmp_path: Path) -> None:
    policy = f"package agentops.governance\n\nresult := {ALLOW}\n"
    first = PolicyBundle.load(write(tmp_path / "a", {"p.rego": policy}))
    same = PolicyBundle.load(write(tmp_path / "b", {"p.rego": policy}))
    assert first.revision == same.revision
    assert first.revision == bundle_revision({"p.rego": policy})
    renamed = PolicyBundle.load(write(tmp_path / "c", {"q.rego": policy}))
    assert renamed.revision != first.revision
    (tmp_path / "b" / "p.rego").write_text(policy + "\n")
    assert PolicyBundle.load(tmp_path / "b").revision != first.revision
    (tmp_path / "b" / "notes.txt").write_text("not a policy")
    (tmp_path / "b" / "p.rego").write_text(policy)
    assert PolicyBundle.load(tmp_path / "b").revision == first.revision
    # Names and contents are delimited: moving text across the boundary changes the hash.
    assert bundle_revision({"a.rego": "b", "c.rego": ""}) != bundle_revision({"a.rego": "bc.rego"})


def test_the_shipped_folder_holds_the_default_policies() -> None:
    assert (default_policy_folder() / "agentops.rego").is_file()


# --- back-testing --------------------------------------------------------------------------------


def test_evaluate_many_evaluates_each_distinct_input_once(
    shipped: PolicyBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = [
        action(),
        action(action="iam.create_access_key"),
        {**action(), "target": "ticket-42"},  # equal to the first
        dict(reversed(list(action().items()))),  # equal to the first, keys in another order
        action(amount_usd=900, action="orders.refund_request"),
        action(action="iam.create_access_key"),
    ]
    evaluated = []
    original = PolicyBundle._evaluate

    def counting(self: PolicyBundle, document: object, data: bytes, timeout: float) -> Decision:
        evaluated.append(document)
        return original(self, document, data, timeout)

    monkeypatch.setattr(PolicyBundle, "_evaluate", counting)
    decisions = shipped.evaluate_many(inputs, stats(0.5, 100))
    assert len(evaluated) == 3
    assert [d.zone for d in decisions] == ["yellow", "red", "yellow", "yellow", "red", "red"]
    assert [d.decision for d in decisions] == [
        "review",
        "deny",
        "review",
        "review",
        "review",
        "deny",
    ]
    assert decisions == [shipped.evaluate(one, stats(0.5, 100)) for one in inputs]


def test_input_fields_are_what_the_policies_read_in_code_only() -> None:
    code = {
        "a.rego": 'package p\n# input.comment is not code\nx if input.kind == "input.string"\n'
        'y if input["data_zone"] == "public"\nz if is_string(input.agent_type)\n'
        "w if my_input.q == input_context.r\n"
    }
    assert input_fields(code) == frozenset({"kind", "data_zone", "agent_type"})
    # Every way of reading fields not named in the source turns the projection off.
    for sneaky in (
        "x if some k, _ in input",
        "x if input[k] == 1",
        'x if object.get(input, "amount_usd", 0) > 5',
        "x if walk(input, [path, value])",
        'x if input ["amount_usd"] > 5',
        "y := input\nx if y.amount_usd > 5",
        'x if input.kind == "a" # and input["q"]\nz := json.marshal(input)',
    ):
        assert input_fields({"s.rego": f"package p\n{sneaky}\n"}) is None, sneaky


def test_the_shipped_policies_read_fields_one_by_one(shipped: PolicyBundle) -> None:
    # A back-test evaluates each distinct projection once; a whole-input read would stop that.
    assert shipped.input_fields is not None
    assert {"agent_type", "kind", "action", "context"} <= shipped.input_fields
    assert "event_id" not in shipped.input_fields


def test_a_policy_reading_input_as_a_whole_sees_every_field_in_a_batch(tmp_path: Path) -> None:
    # Documents that differ only in a field no rule names: a policy that reaches it through
    # object.get must still tell them apart, so the batch cannot merge them.
    (tmp_path / "p.rego").write_text(
        "package agentops.governance\n\n"
        'result := {"decision": "deny", "zone": "red"} if {\n'
        '\tobject.get(input, "event_id", "") == "e2"\n'
        '} else := {"decision": "allow", "zone": "green"}\n'
    )
    bundle = PolicyBundle.load(tmp_path)
    assert bundle.input_fields is None
    decisions = bundle.evaluate_many([{"event_id": f"e{n}", "kind": "tool_call"} for n in range(4)])
    assert [d.decision for d in decisions] == ["allow", "allow", "deny", "allow"]
    bundle.close()


@pytest.mark.parametrize(
    ("state", "tool", "verdict", "rule"),
    [
        ("normal", "zendesk.reply", ("allow", "green"), None),
        ("throttled", "zendesk.reply", ("allow", "green"), None),  # a rate limit, not a verdict
        ("sandboxed", "kb.search", ("allow", "green"), None),  # read-only: still allowed
        ("sandboxed", "zendesk.reply", ("deny", "red"), "autonomy_sandboxed"),
        ("human_only", "kb.search", ("review", "red"), "autonomy_human_only"),
        ("frozen", "kb.search", ("deny", "red"), "autonomy_frozen"),
    ],
)
def test_the_autonomy_state_restricts_as_its_name_says(
    shipped: PolicyBundle, state: str, tool: str, verdict: tuple[str, str], rule: str | None
) -> None:
    capabilities = {**SUPPORT, "read_only": ["kb.*"]}
    decision = shipped.evaluate(
        action(action=tool, context=context(capabilities=capabilities, autonomy={"state": state}))
    )
    assert (decision.decision, decision.zone) == verdict
    assert decision.rules == ((rule,) if rule else ())
    if state == "human_only":
        assert decision.obligations == {"approvals": 1, "review": "before"}
