# Default governance policy of AgentOps Grid: judges one agent action. Reviewed like code.
#
# input:  the action (agent_id, agent_type, kind, action, target, amount_usd, data_zone, ...)
#         and input.context:
#           capabilities  {tools: [globs], data_zones: [...], max_amount_usd}  (null: no entry)
#           autonomy      {state: "normal" | "throttled" | "sandboxed" | "human_only" | "frozen"}
#           budget        {status: "ok" | "warning" | "breach"}
#           drift         [{severity: "warning" | "critical", status: "open" | ...}, ...]
# data:   data.stats[action] = {failure_rate, override_rate, count} over the last 30 days.
# output: data.agentops.governance.result = {decision, zone, reasons, rules, obligations}.
#
# Every rule below adds one finding {rule, effect, reason}; the effect of the strongest finding
# decides: deny > red (review, one approval first) > yellow (review after the fact) > green.
package agentops.governance

# Evidence thresholds: an action needs this many uses in 30 days before its rates count.
min_uses := 20

max_override_rate := 0.2

max_failure_rate := 0.3

# The share of yellow-zone actions put in the review queue (red ones always are).
yellow_sample_rate := 0.05

# The fields every action document needs. Read one by one (not as input[field]) so that a
# back-test knows which fields the policies look at and evaluates each distinct action once.
required_fields := ["agent_type", "kind", "action"]

present_fields contains "agent_type" if is_string(input.agent_type)

present_fields contains "kind" if is_string(input.kind)

present_fields contains "action" if is_string(input.action)

capabilities := input.context.capabilities

# --- deny -------------------------------------------------------------------------------------

findings contains {
	"rule": "malformed_input",
	"effect": "deny",
	"reason": sprintf("The action document has no usable %s.", [field]),
} if {
	some field in required_fields
	not field in present_fields
}

findings contains {
	"rule": "no_capability_entry",
	"effect": "deny",
	"reason": sprintf("Agent type %s has no entry in the capability registry, so it may call no tool.", [input.agent_type]),
} if {
	input.kind == "tool_call"
	not is_object(capabilities)
}

findings contains {
	"rule": "tool_not_in_capabilities",
	"effect": "deny",
	"reason": sprintf("Tool %s is outside the capabilities of agent type %s.", [input.action, input.agent_type]),
} if {
	input.kind == "tool_call"
	is_object(capabilities)
	not tool_allowed
}

tool_allowed if {
	some pattern in capabilities.tools
	glob.match(pattern, null, input.action)
}

findings contains {
	"rule": "data_zone_not_allowed",
	"effect": "deny",
	"reason": sprintf("Agent type %s may not touch the %s data zone.", [input.agent_type, input.data_zone]),
} if {
	is_string(input.data_zone)
	is_array(capabilities.data_zones)
	not input.data_zone in capabilities.data_zones
}

findings contains {
	"rule": "autonomy_frozen",
	"effect": "deny",
	"reason": sprintf("Agent %s is frozen: nothing runs until a supervisor releases it.", [input.agent_id]),
} if {
	input.context.autonomy.state == "frozen"
}

findings contains {
	"rule": "autonomy_sandboxed",
	"effect": "deny",
	"reason": sprintf("Agent %s is sandboxed: %s is not one of its type's read-only tools, so it may only dry-run.", [input.agent_id, input.action]),
} if {
	input.context.autonomy.state == "sandboxed"
	input.kind == "tool_call"
	not read_only_tool
}

read_only_tool if {
	some pattern in capabilities.read_only
	glob.match(pattern, null, input.action)
}

# --- red: a human approves first -------------------------------------------------------------

findings contains {
	"rule": "amount_above_max",
	"effect": "red",
	"reason": sprintf("The amount of %v USD is above the %v USD that agent type %s may move alone.", [input.amount_usd, capabilities.max_amount_usd, input.agent_type]),
} if {
	is_number(input.amount_usd)
	is_number(capabilities.max_amount_usd)
	input.amount_usd > capabilities.max_amount_usd
}

findings contains {
	"rule": "autonomy_human_only",
	"effect": "red",
	"reason": sprintf("Agent %s is in the human_only state: every action needs an approval first.", [input.agent_id]),
} if {
	input.context.autonomy.state == "human_only"
}

# --- yellow: allowed, reviewed after the fact ------------------------------------------------

stats := data.stats[input.action]

findings contains {
	"rule": "often_overridden",
	"effect": "yellow",
	"reason": sprintf("Humans overrode %s in %.0f%% of %v uses over 30 days (above %.0f%%).", [input.action, stats.override_rate * 100, stats.count, max_override_rate * 100]),
} if {
	stats.count >= min_uses
	stats.override_rate > max_override_rate
}

findings contains {
	"rule": "often_failing",
	"effect": "yellow",
	"reason": sprintf("%s failed in %.0f%% of %v uses over 30 days (above %.0f%%).", [input.action, stats.failure_rate * 100, stats.count, max_failure_rate * 100]),
} if {
	stats.count >= min_uses
	stats.failure_rate > max_failure_rate
}

findings contains {
	"rule": "budget_breach",
	"effect": "yellow",
	"reason": sprintf("Agent %s is over its budget.", [input.agent_id]),
} if {
	input.context.budget.status == "breach"
}

findings contains {
	"rule": "critical_drift_open",
	"effect": "yellow",
	"reason": sprintf("Agent type %s has %v open critical drift finding(s).", [input.agent_type, count(open_critical_drift)]),
} if {
	count(open_critical_drift) > 0
}

open_critical_drift contains finding if {
	some finding in input.context.drift
	finding.severity == "critical"
	object.get(finding, "status", "open") == "open"
}


# --- the decision ----------------------------------------------------------------------------

effects := {f.effect | some f in findings}

decision := "deny" if {
	"deny" in effects
} else := "review" if {
	count(effects) > 0
} else := "allow"

zone := "red" if {
	decision == "deny"
} else := "red" if {
	"red" in effects
} else := "yellow" if {
	"yellow" in effects
} else := "green"

obligations := {"approvals": 1, "review": "before"} if {
	decision == "review"
	zone == "red"
} else := {"approvals": 0, "review": "after", "sample_rate": yellow_sample_rate} if {
	zone == "yellow"
} else := {}

default_reason := "No rule fired: the action is within its type's capabilities and evidence."

reasons := [f.reason | some f in sorted_findings] if {
	count(findings) > 0
} else := [default_reason]

sorted_findings := [f | some rule in rules; some f in findings; f.rule == rule]

rules := sort({f.rule | some f in findings})

result := {
	"decision": decision,
	"zone": zone,
	"reasons": reasons,
	"rules": rules,
	"obligations": obligations,
}
