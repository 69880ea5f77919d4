"""Metering: one provider attempt becomes one usage-ledger entry, in one place.

Every attempt the resilience layer reports (``providers.resilience.Attempt``: failed, cancelled and
successful ones alike, since a failed attempt may have cost tokens) is metered here, whether it served a
run's model step (:mod:`agent.loop`) or an MCP server's sampling request (:mod:`agent.session`). The
callers decide when the entries are written: a run's rows ride on its step commits, sampling writes them
at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

from providers.types import Usage

if TYPE_CHECKING:
    from providers.resilience import Attempt
    from storage.usage import AttemptStatus, UsageEntry

__all__ = ["Metered", "meter"]

_STATUS: dict[str, AttemptStatus] = {"ok": "ok", "error": "error", "cancelled": "aborted"}


class Metered(NamedTuple):
    """One attempt, metered."""

    entry: UsageEntry  # the ledger row
    cost: Decimal | None  # USD; None when unknown (usage or price unknown)
    counted: Usage | None  # what the attempt adds to a run's totals; None: nothing
    unknown: bool  # the attempt leaves the run's totals (and so its cost) unknown


def meter(attempt: Attempt, *, user_id: str, session_id: str | None, config_ids: Mapping[str, str]) -> Metered:
    """``attempt`` as its ledger entry, its cost, and what it adds to a run's totals.

    ``config_ids`` maps a provider config's label (``Attempt.config_label``) to its stored id. An answered call
    that reported nothing (or only part of its counts) makes every total unknown; a failed attempt that
    reported nothing adds nothing (it was refused, or its row records it as unknown).
    """
    from storage.usage import UsageEntry, price_usd

    usage = attempt.usage
    answered = attempt.outcome == "ok"
    entry = UsageEntry(
        user_id=user_id,
        provider=attempt.provider,
        model=attempt.model,
        usage=usage or Usage(),  # an attempt that reported nothing: every count unknown (None), not 0
        status=_STATUS[attempt.outcome],
        session_id=session_id,
        config_id=config_ids.get(attempt.config_label or ""),
        attempt=attempt.number,
        streamed=attempt.streamed,
        latency_ms=attempt.latency * 1000.0,
        ttft_ms=None if attempt.time_to_first_token is None else attempt.time_to_first_token * 1000.0,
        error_class=attempt.error,
        request_id=attempt.request_id,
    )
    cost = price_usd(attempt.provider, attempt.model, usage) if usage is not None else None
    counted = usage if usage is not None else (Usage() if answered else None)
    unknown = (usage is None and answered) or (usage is not None and not usage.known)
    return Metered(entry, cost, counted, unknown)
