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
from typing import TYPE_CHECKING

from providers.types import Usage

if TYPE_CHECKING:
    from providers.resilience import Attempt
    from storage.usage import AttemptStatus, UsageEntry

__all__ = ["meter"]

_STATUS: dict[str, AttemptStatus] = {"ok": "ok", "error": "error", "cancelled": "aborted"}


def meter(
    attempt: Attempt, *, user_id: str, session_id: str | None, config_ids: Mapping[str, str]
) -> tuple[UsageEntry, Decimal | None]:
    """The ledger entry for ``attempt`` and its cost in USD (None when unknown: usage or price unknown).

    ``config_ids`` maps a provider config's label (``Attempt.config_label``) to its stored id.
    """
    from storage.usage import UsageEntry, price_usd

    usage = attempt.usage
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
    return entry, cost
