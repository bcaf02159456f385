"""Search by meaning over a run's CLIP embeddings (index: faiss or blocked NumPy; query: the run's encoder)."""

from selection.search.index import FAISS_AVAILABLE, EmbeddingIndex, Neighbours
from selection.search.query import TARGETS, Hit, RunSearcher, SearchResult, encoder_settings

__all__ = [
    "FAISS_AVAILABLE",
    "TARGETS",
    "EmbeddingIndex",
    "Hit",
    "Neighbours",
    "RunSearcher",
    "SearchResult",
    "encoder_settings",
]
