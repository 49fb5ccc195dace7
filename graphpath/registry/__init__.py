"""Registry scale: many models through one run, each once.

- :mod:`.inputs` expands files, folders (``*.onnx``, recursively) and globs, minus ``--exclude``.
- :mod:`.cache` is the content-addressed result cache: the key is the SHA-256 of the model's
  bytes and its external-data files, graphpath's version and the options that change the
  result; entries are written atomically and checked on read.
- :mod:`.jobs` is the unit of work (one model's stability row or audit report) as JSON-ready data,
  which is what workers send back and what the cache stores, so a cached, a local and a Ray run
  render the same bytes.
- :mod:`.executors` runs the work: ``local`` (worker processes, each model under a memory and a
  time limit) and ``ray[:ADDRESS]`` (:mod:`.ray_executor`, the optional ``ray`` extra).
- :mod:`.run` ties them together for ``graphpath report`` and ``graphpath audit``.

See docs/registry.md. The package imports nothing heavy at import time.
"""
