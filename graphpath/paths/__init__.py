"""graphpath.paths.analysis."""
