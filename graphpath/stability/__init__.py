"""graphpath.stability."""
