"""Provider names as telemetry sends them, mapped to the provider ids genai-prices uses."""

from __future__ import annotations

from typing import Final

# OpenTelemetry GenAI (gen_ai.provider.name, older gen_ai.system) and OpenInference
# (llm.provider) spellings of the providers genai-prices knows.
_PROVIDER_IDS: Final = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "google": "google",
    "google_genai": "google",
    "gemini": "google",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "mistral": "mistral",
    "aws.bedrock": "aws",
    "aws_bedrock": "aws",
    "bedrock": "aws",
    "amazon_bedrock": "aws",
    "aws": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.openai": "azure",
    "az.ai.inference": "azure",
    "azure_openai": "azure",
    "azure": "azure",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "x-ai": "x-ai",
    "deepseek": "deepseek",
    "groq": "groq",
    "cohere": "cohere",
    "perplexity": "perplexity",
    "together_ai": "together",
    "together-ai": "together",
    "together": "together",
    "fireworks_ai": "fireworks",
    "fireworks": "fireworks",
    "openrouter": "openrouter",
    "cerebras": "cerebras",
    "moonshot": "moonshotai",
    "moonshotai": "moonshotai",
}


def normalize_provider(name: str | None) -> str | None:
    """The genai-prices provider id of a provider name as telemetry sends it.

    Args:
        name: An OpenTelemetry ``gen_ai.provider.name`` / ``gen_ai.system`` or OpenInference
            ``llm.provider`` value, e.g. ``gcp.gemini``, ``mistral_ai``, ``aws.bedrock``.

    Returns:
        The genai-prices id (``google``, ``mistral``, ``aws`` ...); a name it does not know,
        lower-cased; ``None`` for ``None``.
    """
    if name is None:
        return None
    key = name.strip().lower()
    return _PROVIDER_IDS.get(key, key)


__all__ = ["normalize_provider"]
