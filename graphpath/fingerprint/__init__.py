"""graphpath.fingerprint.generation."""
