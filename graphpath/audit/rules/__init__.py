"""graphpath.audit.run.rules."""
