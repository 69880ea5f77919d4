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
    entry, cost = meter(attempt(), user_id="u1", session_id="s1", config_ids={"work": "cfg_1"})
    assert (entry.user_id, entry.session_id, entry.config_id) == ("u1", "s1", "cfg_1")
    assert (entry.provider, entry.model, entry.attempt, entry.streamed) == ("openai", "gpt-4.1-mini", 2, True)
    assert entry.status == "ok"
    assert entry.latency_ms == pytest.approx(250.0)
    assert entry.ttft_ms == pytest.approx(50.0)
    assert entry.request_id == "req_1"
    assert entry.usage == Usage(input_tokens=1000, output_tokens=100)
    assert isinstance(cost, Decimal)
    assert cost > 0


@pytest.mark.parametrize(("outcome", "status"), [("ok", "ok"), ("error", "error"), ("cancelled", "aborted")])
def test_outcomes_map_to_ledger_statuses(outcome: str, status: str) -> None:
    entry, _ = meter(attempt(outcome=outcome, error="Timeout"), user_id="u", session_id=None, config_ids={})
    assert entry.status == status
    assert entry.error_class == "Timeout"
    assert entry.config_id is None  # a label the session does not know: no config id, not a guess


def test_an_attempt_that_reported_nothing_is_unknown_not_zero() -> None:
    entry, cost = meter(
        attempt(usage=None, time_to_first_token=None, streamed=False), user_id="u", session_id="s", config_ids={}
    )
    assert entry.usage == Usage()  # every count None
    assert entry.usage.input_tokens is None
    assert cost is None
    assert entry.ttft_ms is None


def test_an_unpriced_model_has_an_unknown_cost_and_a_local_one_costs_nothing() -> None:
    _, unpriced = meter(attempt(model="no-such-model-anywhere"), user_id="u", session_id=None, config_ids={})
    assert unpriced is None
    _, local = meter(attempt(provider="ollama", model="llama3.1"), user_id="u", session_id=None, config_ids={})
    assert local == Decimal(0)
