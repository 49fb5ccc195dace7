"""graphpath.model."""
