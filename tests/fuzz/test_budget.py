"""The CI fuzz budget: hostile models through every command, each in its own process.

hypothesis draws the command, the mutation class and every decision of the generator
(:class:`~tests.fuzz.cases.HypothesisChooser`), so a failure shrinks to the smallest base model
and the simplest mutation; the failing case's description is the assertion message. The full
campaign with its table is ``python bench/fuzz.py --cases 10000``.

``GRAPHPATH_FUZZ_EXAMPLES`` sets the number of static cases (default 200; a few minutes).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.cases import BOMBS, MUTATIONS, Case, HypothesisChooser, external_case, make_case
from tests.fuzz.harness import preload, run_case

STATIC = ("analyze", "blocks", "paths", "audit", "report")
EXAMPLES = int(os.environ.get("GRAPHPATH_FUZZ_EXAMPLES", "200"))
#: Bombs that take seconds by design (the 200 000-node chain, 10⁶ inputs) run in bench/fuzz.py.
LIGHT_BOMBS = sorted(name for name, (_, heavy) in BOMBS.items() if not heavy)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the harness forks a warm interpreter")


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    preload(STATIC)


def _check(case: Case, command: str) -> None:
    outcome = run_case(case, command, fork=True)
    assert not outcome.bad, outcome.describe()


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_hostile_models_never_break_the_contract(data):
    """No exit 3, signal, hang, partial -o file, canary read, accepted hostile reference or
    multi-line error, whatever the mutation."""
    ch = HypothesisChooser(data)
    command = ch.choice(STATIC)
    klass = ch.choice([k for k in MUTATIONS if k != "bombs"])
    _check(make_case(ch, klass), command)


@pytest.mark.parametrize("bomb", LIGHT_BOMBS)
def test_resource_bombs_finish_or_refuse(bomb):
    _check(BOMBS[bomb][0](), "analyze")


@pytest.mark.parametrize("command", ["blocks", "audit"])
@pytest.mark.parametrize("location", ["dotdot", "nul", "symlink-out", "absolute", "fifo", "length-huge"])
@pytest.mark.parametrize("carrier", ["initializer", "constant", "subgraph-constant", "tensors-attribute",
                                     "function-constant"])
def test_hostile_external_references_are_refused_without_reading(command, carrier, location):
    _check(external_case(carrier, location), command)


@pytest.mark.torch
@settings(max_examples=max(EXAMPLES // 10, 10), deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_hostile_models_through_backward(data):
    """The numeric pass on a smaller share (it imports torch and runs onnxruntime)."""
    pytest.importorskip("torch")
    preload(["backward"])
    ch = HypothesisChooser(data)
    _check(make_case(ch, ch.choice([k for k in MUTATIONS if k != "bombs"])), "backward")
