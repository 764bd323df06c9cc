"""The fleet's shared memory while simulating: policy facts with versions, entity facts."""

from __future__ import annotations

import random
from typing import Final

from .agent_types import REASONS, AgentType

MAX_ENTITY_FACTS: Final = 500  # per namespace; beyond it the agents forget (delete) facts


class FactStore:
    """Current content of every fact key, as the agents' memory operations leave it."""

    def __init__(self) -> None:
        self.facts: dict[str, str] = {}
        self._versions: dict[str, int] = {}
        self._live: dict[str, list[str]] = {}  # namespace -> entity fact keys that exist

    def get(self, atype: AgentType, key: str) -> str:
        """Content of ``key``; a policy fact starts at its first version."""
        content = self.facts.get(key)
        if content is None:
            for k, versions in atype.policy_facts:
                if k == key:
                    content = self.facts[key] = versions[0]
                    self._versions[key] = 0
        return content or ""

    def set(self, key: str, content: str) -> None:
        self.facts[key] = content

    def pick(self, r: random.Random, atype: AgentType) -> str:
        """A key an agent of ``atype`` reads: mostly policy, sometimes a known entity fact."""
        live = self._live.get(atype.namespace)
        if live and r.random() < 0.3:
            return r.choice(live)
        return r.choice(atype.policy_facts)[0]

    def write(self, r: random.Random, atype: AgentType, entity: str) -> tuple[str, str, str]:
        """Draw and apply one memory write; returns (action, key, content)."""
        live = self._live.setdefault(atype.namespace, [])
        roll = r.random()
        if roll < 0.03:
            key, versions = r.choice(atype.policy_facts)
            current = self._versions.get(key, 0)
            self.get(atype, key)
            if current + 1 < len(versions):
                self._versions[key] = current + 1
                self.facts[key] = versions[current + 1]
                return "update", key, versions[current + 1]
        if (roll < 0.6 or len(live) < 3) and len(live) < MAX_ENTITY_FACTS:
            template, contents = r.choice(atype.entity_facts)
            key = template.replace("{id}", entity)
            content = r.choice(contents)
            action = "update" if key in self.facts else "add"
            if action == "add":
                live.append(key)
            self.facts[key] = content
            return action, key, content
        if roll < 0.85:
            key = r.choice(live)
            content = f"{self.facts[key]} Updated: {r.choice(REASONS).lower()}."
            self.facts[key] = content
            return "update", key, content
        key = live.pop(r.randrange(len(live)))
        return "delete", key, self.facts.pop(key)
