"""graphpath.audit.run."""
