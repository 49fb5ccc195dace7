"""plain detectors (see GUIDE.md)."""

from __future__ import annotations
