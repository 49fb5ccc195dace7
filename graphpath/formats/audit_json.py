"""Audit as JSON: ``AuditResult.to_dict()`` with sorted keys, byte-stable.

It embeds every model's report, so it also serves as a later ``--baseline``
(:func:`graphpath.audit.run.load_baseline`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from graphpath.audit.run import AuditResult


def render(result: AuditResult) -> str:
    return json.dumps(result.to_dict(), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
