"""Read-side adapters the screens use: records and Arrow tables from run folders and the catalog, no widgets."""
