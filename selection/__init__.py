"""Everything that runs a model; heavy libraries are imported lazily inside functions."""
