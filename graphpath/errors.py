"""The two kinds of failure graphpath distinguishes.

``GraphpathError`` is the user's input or environment (a bad file, a missing optional backend):
the CLI prints its message on one line and exits 2. Anything else is ours: the CLI prints the
traceback with a "please report" line and exits 3.
"""

from __future__ import annotations


class GraphpathError(Exception):
    """A problem with the user's input or environment, told in one line."""


class InternalError(Exception):
    """A bug in graphpath: an invariant that should have held did not."""


class MissingExtraError(GraphpathError):
    """An optional dependency is not installed; the message carries the install hint."""

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs {module}, which is not installed: "
            f"pip install 'graphpath[{extra}]' -c constraints.txt"
        )
        self.module = module
        self.extra = extra
