"""Episode data: the Zarr episode store (``store``), its schema, and (later) torch datasets."""
