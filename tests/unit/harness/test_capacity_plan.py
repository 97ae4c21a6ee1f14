"""Setting a scenario's load for a capacity point, and refusing loads its arrival cannot take."""

from __future__ import annotations

import pytest

from vvbench.artifacts.scenarios import Scenario, resolve_scenario
from vvbench.core.errors import InputError
from vvbench.harness.capacity import CapacityPlan, check_plan, scenario_at


def _open(kind: str) -> Scenario:
    data = resolve_scenario("capacity-smoke").model_dump(mode="json")
    data["arrival"] = {kind: {"rate": 1.0}}
    return Scenario.model_validate(data, context={"recorded": True})


def test_users_set_the_closed_loop_and_keep_the_rest():
    base = resolve_scenario("capacity-smoke")
    at = scenario_at(base, "users", 4)
    assert at.arrival.closed.users == 4 and base.arrival.closed.users == 1
    assert (at.name, at.slos, at.duration, at.warmup) == (base.name, base.slos, base.duration, base.warmup)


@pytest.mark.parametrize("kind", ["poisson", "constant"])
def test_rate_sets_an_open_loop(kind):
    assert getattr(scenario_at(_open(kind), "rate", 2.5).arrival, kind).rate == 2.5


def test_loads_the_arrival_cannot_take_are_input_errors():
    closed = resolve_scenario("capacity-smoke")
    with pytest.raises(InputError, match="needs a poisson or constant"):
        scenario_at(closed, "rate", 1)
    with pytest.raises(InputError, match="closed-loop"):
        scenario_at(_open("poisson"), "users", 2)
    with pytest.raises(InputError, match="whole numbers"):
        scenario_at(closed, "users", 2.5)
    with pytest.raises(InputError, match="stages"):
        check_plan(CapacityPlan(scenario=resolve_scenario("spike-15"), key="rate", loads=[1.0]))
