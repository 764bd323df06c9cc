"""The live service: OTLP/HTTP receiver, decision gate API and supervisor console.

``agentops serve`` runs :func:`create_app` on uvicorn; :mod:`.access` holds the tokens, roles,
console sessions and refusal log.
"""

from agentops_assets.service.access import ROLES, Principal, TokenStore
from agentops_assets.service.app import create_app

__all__ = ["ROLES", "Principal", "TokenStore", "create_app"]
