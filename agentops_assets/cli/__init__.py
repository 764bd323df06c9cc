"""The ``agentops`` command."""
