"""Dataset ingest: LLaVA, ms-swift, LLaMA-Factory ShareGPT and mapped tables into the catalog."""

from store.failures import IngestDiskFull, translating
from store.ingest import core
from store.ingest.core import FLAGS, LONG_TEXT_CHARS, IngestProgress, IngestReport
from store.ingest.formats import FORMATS, MAPPING_KEYS
from store.ingest.images import CHECK_MODES

# A full disk or a sample nested past Python's recursion limit is an IngestError, not a traceback.
ingest = translating("ingesting", "path", IngestDiskFull)(core.ingest)

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
