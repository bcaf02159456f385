"""Dataset ingest: LLaVA, ms-swift, LLaMA-Factory ShareGPT and mapped tables into the catalog."""

from store.ingest.core import FLAGS, LONG_TEXT_CHARS, IngestProgress, IngestReport, ingest
from store.ingest.formats import FORMATS, MAPPING_KEYS
from store.ingest.images import CHECK_MODES

__all__ = [
    "CHECK_MODES",
    "FLAGS",
    "FORMATS",
    "LONG_TEXT_CHARS",
    "MAPPING_KEYS",
    "IngestProgress",
    "IngestReport",
    "ingest",
]
