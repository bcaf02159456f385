"""Pure-data layer: the DuckDB catalog, dataset readers, run folders, decisions, manifests."""
