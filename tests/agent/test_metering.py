"""``agent.metering.meter``: one attempt -> one usage entry and its cost, the same for runs and sampling."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from agent.metering import meter
from providers.resilience import Attempt
from providers.types import Usage


def attempt(**fields: Any) -> Attempt:
    values: dict[str, Any] = {
        "provider": "openai",
        "config_label": "work",
        "model": "gpt-4.1-mini",
        "number": 2,
        "target_index": 0,
        "streamed": True,
        "started_at": 1_700_000_000.0,
        "latency": 0.25,
        "time_to_first_token": 0.05,
        "outcome": "ok",
        "usage": Usage(input_tokens=1000, output_tokens=100),
        "request_id": "req_1",
    }
    values.update(fields)
    return Attempt(**values)


def test_an_attempt_becomes_its_entry_with_the_stored_config_id_and_cost() -> None:
    metered = meter(attempt(), user_id="u1", session_id="s1", config_ids={"work": "cfg_1"})
    entry, cost = metered.entry, metered.cost
    assert (entry.user_id, entry.session_id, entry.config_id) == ("u1", "s1", "cfg_1")
    assert (entry.provider, entry.model, entry.attempt, entry.streamed) == ("openai", "gpt-4.1-mini", 2, True)
    assert entry.status == "ok"
    assert entry.latency_ms == pytest.approx(250.0)
    assert entry.ttft_ms == pytest.approx(50.0)
    assert entry.request_id == "req_1"
    assert entry.usage == Usage(input_tokens=1000, output_tokens=100)
    assert isinstance(cost, Decimal)
    assert cost > 0
    assert metered.counted == entry.usage
    assert metered.unknown is False


@pytest.mark.parametrize(("outcome", "status"), [("ok", "ok"), ("error", "error"), ("cancelled", "aborted")])
def test_outcomes_map_to_ledger_statuses(outcome: str, status: str) -> None:
    entry = meter(attempt(outcome=outcome, error="Timeout"), user_id="u", session_id=None, config_ids={}).entry
    assert entry.status == status
    assert entry.error_class == "Timeout"
    assert entry.config_id is None  # a label the session does not know: no config id, not a guess


def test_an_attempt_that_reported_nothing_is_unknown_not_zero() -> None:
    metered = meter(
        attempt(usage=None, time_to_first_token=None, streamed=False), user_id="u", session_id="s", config_ids={}
    )
    assert metered.entry.usage == Usage()  # every count None
    assert metered.entry.usage.input_tokens is None
    assert metered.cost is None
    assert metered.entry.ttft_ms is None
    # An answered call that reported nothing makes the run's totals unknown ...
    assert metered.counted == Usage()
    assert metered.unknown is True


def test_a_failed_attempt_that_reported_nothing_adds_nothing_to_the_totals() -> None:
    failed = attempt(outcome="error", usage=None, error="Unavailable")
    metered = meter(failed, user_id="u", session_id="s", config_ids={})
    assert metered.counted is None
    assert metered.unknown is False
    assert metered.entry.status == "error"  # its ledger row is written all the same


def test_a_partial_count_leaves_the_totals_unknown() -> None:
    metered = meter(attempt(usage=Usage(input_tokens=10)), user_id="u", session_id="s", config_ids={})
    assert metered.counted == Usage(input_tokens=10)
    assert metered.unknown is True
    assert metered.cost is None


def test_an_unpriced_model_has_an_unknown_cost_and_a_local_one_costs_nothing() -> None:
    unpriced = meter(attempt(model="no-such-model-anywhere"), user_id="u", session_id=None, config_ids={})
    assert unpriced.cost is None
    local = meter(attempt(provider="ollama", model="llama3.1"), user_id="u", session_id=None, config_ids={})
    assert local.cost == Decimal(0)
