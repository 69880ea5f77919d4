"""The usage ledger: one row per model-call attempt, priced with ``genai-prices``; reports and budgets.

Unknown stays unknown: token fields the provider did not report are NULL (never 0), and a cost that
cannot be computed (model not in the price table, or input/output tokens unknown) is NULL. Local
providers (``Profile.local``, e.g. Ollama) cost exactly 0. Costs are stored as integer nano-USD so that
sums are exact in both databases.
"""

from __future__ import annotations

import datetime as dt
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Any, Literal

import genai_prices

from providers.profiles import PROFILES
from providers.types import Usage
from storage._db import Conn, Database, Row, new_id

# "interrupted": the process died during the call (an open attempt settled later, see storage.attempts).
AttemptStatus = Literal["ok", "error", "aborted", "interrupted"]
GroupBy = Literal["user", "provider", "model", "day", "session", "config"]
_GROUP_COLUMNS: dict[str, str] = {
    "user": "user_id",
    "provider": "provider",
    "model": "model",
    "day": "day",
    "session": "session_id",
    "config": "config_id",
}
_NANO = Decimal(10) ** 9


# --------------------------------------------------------------------------- pricing


def price_usd(provider: str, model: str, usage: Usage) -> Decimal | None:
    """The cost of one call in USD, or None when it cannot be known.

    Local providers cost 0 whatever the counts. Otherwise input and output tokens must both be known
    (a partial count would under-bill silently), and the model must be in genai-prices' table.
    """
    profile = PROFILES.get(provider)
    if profile is not None and profile.local:
        return Decimal(0)
    if usage.input_tokens is None or usage.output_tokens is None:
        return None
    price_provider = profile.price_provider if profile is not None else provider
    if price_provider is None:
        return None
    return _price(
        price_provider,
        model,
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H"),
    )


def _price(
    provider_id: str, model: str, inp: int, out: int, cache_read: int | None, cache_write: int | None, hour: str
) -> Decimal | None:
    """genai-prices' price, via per-token rates when the model's price is linear (the common case).

    ``calc_price`` costs ~100 µs per call, which would cap the ledger near a few thousand rows/s. For a
    model without tiers, the price is linear in each token kind, so four probe calls per (model, hour)
    give exact Decimal rates. The first use of every rate set is checked against ``calc_price`` and the
    fast path is dropped for that model if they ever differ.
    """
    rates = _rates(provider_id, model, hour)
    if rates is None:
        return _slow_price(provider_id, model, inp, out, cache_read, cache_write)
    if rates is _NO_PRICE:
        return None
    cr, cw = cache_read or 0, cache_write or 0
    million = Decimal(1_000_000)
    fast = (rates[0] * max(inp - cr - cw, 0) + rates[1] * cr + rates[2] * cw + rates[3] * out) / million
    key = (provider_id, model, hour)
    if key not in _checked:
        _checked.add(key)
        slow = _slow_price(provider_id, model, inp, out, cache_read, cache_write)
        if slow is None or slow != fast:
            _disabled.add((provider_id, model))
            return slow
    return fast


_NO_PRICE: tuple[Decimal, ...] = ()
_checked: set[tuple[str, str, str]] = set()
_disabled: set[tuple[str, str]] = set()


@lru_cache(maxsize=1024)
def _cached_rates(provider_id: str, model: str, hour: str) -> tuple[Decimal, ...] | None:
    del hour  # keys the cache only
    million = 1_000_000
    probes = [
        _slow_price(provider_id, model, million, 0, None, None),
        _slow_price(provider_id, model, million, 0, million, None),
        _slow_price(provider_id, model, million, 0, None, million),
        _slow_price(provider_id, model, 0, million, None, None),
    ]
    if probes[0] is None:
        return _NO_PRICE
    small = [
        _slow_price(provider_id, model, 1000, 0, None, None),
        _slow_price(provider_id, model, 1000, 0, 1000, None),
        _slow_price(provider_id, model, 1000, 0, None, 1000),
        _slow_price(provider_id, model, 0, 1000, None, None),
    ]
    # Tiered prices (e.g. above 200k input tokens) make 1M-token probes differ from 1k-token ones.
    if any(p is None or q is None or q * 1000 != p for p, q in zip(probes, small, strict=True)):
        return None
    return tuple(p for p in probes if p is not None)


def _rates(provider_id: str, model: str, hour: str) -> tuple[Decimal, ...] | None:
    if (provider_id, model) in _disabled:
        return None
    return _cached_rates(provider_id, model, hour)


def _slow_price(
    provider_id: str, model: str, inp: int, out: int, cache_read: int | None, cache_write: int | None
) -> Decimal | None:
    # genai-prices, like routekit, counts cached tokens inside input_tokens.
    values: dict[str, Any] = {"input_tokens": inp, "output_tokens": out}
    if cache_read is not None:
        values["cache_read_tokens"] = cache_read
    if cache_write is not None:
        values["cache_write_tokens"] = cache_write
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = genai_prices.calc_price(genai_prices.Usage(**values), model, provider_id=provider_id)
    except (LookupError, ValueError):
        return None
    return Decimal(result.total_price)


def _to_nano(value: Decimal | None) -> int | None:
    return None if value is None else int((value * _NANO).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _from_nano(value: Any) -> Decimal | None:
    return None if value is None else Decimal(int(value)) / _NANO


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class UsageEntry:
    """One model-call attempt, as the agent reports it."""

    user_id: str
    provider: str
    model: str
    usage: Usage
    status: AttemptStatus = "ok"
    session_id: str | None = None
    config_id: str | None = None
    attempt: int = 1
    streamed: bool = False
    latency_ms: float | None = None
    ttft_ms: float | None = None
    error_class: str | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class UsageRow:
    id: str
    entry: UsageEntry
    cost_usd: Decimal | None
    created_at: float
    day: str


_INSERT = (
    "INSERT INTO usage (id, user_id, session_id, provider, config_id, model, attempt, streamed, input_tokens, "
    "output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_nanousd, latency_ms, ttft_ms, "
    "status, error_class, request_id, created_at, day) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def prepare(
    entry: UsageEntry, *, now: float | None = None, row_id: str | None = None
) -> tuple[UsageRow, tuple[Any, ...]]:
    """Price an entry and build its row (done outside the transaction to keep transactions short)."""
    created = time.time() if now is None else now
    day = dt.datetime.fromtimestamp(created, dt.UTC).strftime("%Y-%m-%d")
    cost = price_usd(entry.provider, entry.model, entry.usage)
    row = UsageRow(row_id or new_id(), entry, cost, created, day)
    u = entry.usage
    params = (
        row.id,
        entry.user_id,
        entry.session_id,
        entry.provider,
        entry.config_id,
        entry.model,
        entry.attempt,
        1 if entry.streamed else 0,
        u.input_tokens,
        u.output_tokens,
        u.cache_read_tokens,
        u.cache_write_tokens,
        u.reasoning_tokens,
        _to_nano(cost),
        None if entry.latency_ms is None else float(entry.latency_ms),
        None if entry.ttft_ms is None else float(entry.ttft_ms),
        entry.status,
        entry.error_class,
        entry.request_id,
        created,
        day,
    )
    return row, params


async def insert_usage(c: Conn, params: Sequence[tuple[Any, ...]], *, skip_existing: bool = False) -> None:
    """Insert prepared rows inside the caller's transaction; ``skip_existing``: a row whose id is stored
    already is left as it is (settling open attempts, which two processes may do at once)."""
    sql = _INSERT + " ON CONFLICT (id) DO NOTHING" if skip_existing else _INSERT
    if len(params) == 1:
        await c.execute(sql, *params[0])
    else:
        await c.executemany(sql, list(params))


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Totals for one group. Unknown is not zero: a token sum or the cost is None when any call of the group
    left it unknown; ``known`` and ``known_cost_usd`` give what is known for sure (sums over the calls that
    reported each field: lower bounds), ``tokens_unknown`` / ``cost_unknown`` how many calls did not."""

    group: dict[str, str | None]
    calls: int
    failed_calls: int
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    reasoning_tokens: int | None
    tokens_unknown: int  # calls whose input or output count is unknown
    cost_usd: Decimal | None
    cost_unknown: int  # calls whose cost is unknown
    known: Usage  # every field an int: the sum over the calls that reported it
    known_cost_usd: Decimal  # the cost of the calls that could be priced


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    user_id: str
    month: str  # YYYY-MM (UTC)
    spent_usd: Decimal
    spent_tokens: int
    limit_usd: Decimal | None
    limit_tokens: int | None
    cost_unknown_calls: int

    @property
    def exceeded(self) -> bool:
        over_usd = self.limit_usd is not None and self.spent_usd >= self.limit_usd
        over_tokens = self.limit_tokens is not None and self.spent_tokens >= self.limit_tokens
        return over_usd or over_tokens

    @property
    def remaining_usd(self) -> Decimal | None:
        return None if self.limit_usd is None else max(Decimal(0), self.limit_usd - self.spent_usd)

    @property
    def remaining_tokens(self) -> int | None:
        return None if self.limit_tokens is None else max(0, self.limit_tokens - self.spent_tokens)


def _month_range(month: str) -> tuple[str, str]:
    year, mon = (int(x) for x in month.split("-"))
    nxt = f"{year + 1:04d}-01" if mon == 12 else f"{year:04d}-{mon + 1:02d}"
    return f"{month}-01", f"{nxt}-01"


# How long "this user has no budget" is trusted without reading it again. A budget set through this ledger
# takes effect at once; one set by another process (another instance, the CLI) within this many seconds.
NO_BUDGET_RECHECK_SECONDS = 5.0
_NO_BUDGET_CACHE_SIZE = 10_000


class UsageLedger:
    def __init__(self, db: Database) -> None:
        self._db = db
        # user id -> monotonic time until which the user is known to have no budget (the agent asks before
        # every run; the answer almost never changes, and the read is a trip to the database).
        self._unbudgeted: dict[str, float] = {}
        self._budget_writes = 0  # a read that overlapped a budget write must not cache its answer

    async def record(self, entry: UsageEntry) -> UsageRow:
        """Record one attempt durably (returns after commit)."""
        row, params = prepare(entry)
        await self._db.insert(_INSERT, params)
        return row

    async def record_many(self, entries: Sequence[UsageEntry]) -> list[UsageRow]:
        prepared = [prepare(e) for e in entries]
        await self._db.write(lambda c: insert_usage(c, [p for _, p in prepared]))
        return [r for r, _ in prepared]

    async def rows(self, *, user_id: str | None = None, session_id: str | None = None) -> list[dict[str, Any]]:
        """Raw ledger rows (for audits and tests), oldest first; ``cost_usd`` as Decimal or None."""
        where, args = _filters(user_id=user_id, session_id=session_id)
        rows = await self._db.read(
            lambda c: c.fetch(f"SELECT * FROM usage{where} ORDER BY created_at, id", *args)  # noqa: S608
        )
        out = []
        for r in rows:
            item = dict(r)
            item["cost_usd"] = _from_nano(item.pop("cost_nanousd"))
            out.append(item)
        return out

    async def report(
        self,
        by: Sequence[GroupBy],
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        since_day: str | None = None,
        until_day: str | None = None,
    ) -> list[UsageTotals]:
        """Totals grouped by any of user, provider, model, day, session, config; days are UTC ``YYYY-MM-DD``."""
        columns = [_GROUP_COLUMNS[b] for b in by]
        where, args = _filters(user_id=user_id, session_id=session_id, since_day=since_day, until_day=until_day)
        select = ", ".join([*columns, ""]) if columns else ""
        group = f" GROUP BY {', '.join(columns)} ORDER BY {', '.join(columns)}" if columns else ""
        sql = (
            f"SELECT {select}COUNT(*) AS calls, "  # noqa: S608 - column names come from _GROUP_COLUMNS
            "SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END) AS failed, "
            "SUM(input_tokens) AS inp, SUM(output_tokens) AS outp, SUM(cache_read_tokens) AS cr, "
            "SUM(cache_write_tokens) AS cw, SUM(reasoning_tokens) AS rs, "
            "COUNT(input_tokens) AS inp_n, COUNT(output_tokens) AS outp_n, COUNT(cache_read_tokens) AS cr_n, "
            "COUNT(cache_write_tokens) AS cw_n, COUNT(reasoning_tokens) AS rs_n, "
            "SUM(CASE WHEN input_tokens IS NULL OR output_tokens IS NULL THEN 1 ELSE 0 END) AS tok_unknown, "
            "SUM(cost_nanousd) AS cost, SUM(CASE WHEN cost_nanousd IS NULL THEN 1 ELSE 0 END) AS cost_unknown "
            f"FROM usage{where}{group}"
        )
        rows = await self._db.read(lambda c: c.fetch(sql, *args))
        return [_totals(r, by) for r in rows if int(r["calls"] or 0) > 0]

    # ------------------------------------------------------------------ budgets

    async def set_budget(
        self, user_id: str, *, monthly_usd: Decimal | float | str | None, monthly_tokens: int | None
    ) -> None:
        nano = None if monthly_usd is None else _to_nano(Decimal(str(monthly_usd)))
        self._budget_writes += 1
        self._unbudgeted.pop(user_id, None)
        await self._db.write(
            lambda c: c.execute(
                "INSERT INTO budgets (user_id, monthly_nanousd, monthly_tokens, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET monthly_nanousd = excluded.monthly_nanousd, "
                "monthly_tokens = excluded.monthly_tokens, updated_at = excluded.updated_at",
                user_id,
                nano,
                monthly_tokens,
                time.time(),
            )
        )
        self._budget_writes += 1

    async def check_budget(self, user_id: str, *, month: str | None = None) -> BudgetStatus:
        """This month's spend against the user's budget (UTC month). ``exceeded`` tells the agent to stop."""
        status = await self._budget(user_id, month, spend_without_budget=True)
        assert status is not None
        return status

    async def active_budget(self, user_id: str, *, month: str | None = None) -> BudgetStatus | None:
        """Like :meth:`check_budget`, but None (and no scan of the month's usage rows) when the user has no
        budget: what the agent checks before every run. "No budget" is remembered for
        :data:`NO_BUDGET_RECHECK_SECONDS` (a budget set through this ledger is seen at once)."""
        if month is not None:
            return await self._budget(user_id, month, spend_without_budget=False)
        now = time.monotonic()
        if self._unbudgeted.get(user_id, 0.0) > now:
            return None
        writes = self._budget_writes
        status = await self._budget(user_id, None, spend_without_budget=False)
        if status is None and writes == self._budget_writes:
            if len(self._unbudgeted) >= _NO_BUDGET_CACHE_SIZE:
                self._unbudgeted.clear()
            self._unbudgeted[user_id] = now + NO_BUDGET_RECHECK_SECONDS
        return status

    async def _budget(self, user_id: str, month: str | None, *, spend_without_budget: bool) -> BudgetStatus | None:
        month = month or dt.datetime.now(dt.UTC).strftime("%Y-%m")
        start, end = _month_range(month)

        async def read(c: Conn) -> tuple[Row | None, Row | None]:
            budget = await c.fetchone("SELECT monthly_nanousd, monthly_tokens FROM budgets WHERE user_id = ?", user_id)
            limited = budget is not None and (
                budget["monthly_nanousd"] is not None or budget["monthly_tokens"] is not None
            )
            if not limited and not spend_without_budget:
                return budget, None
            spent = await c.fetchone(
                "SELECT SUM(cost_nanousd) AS cost, "
                "SUM(COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0)) AS tokens, "
                "SUM(CASE WHEN cost_nanousd IS NULL THEN 1 ELSE 0 END) AS unknown "
                "FROM usage WHERE user_id = ? AND day >= ? AND day < ?",
                user_id,
                start,
                end,
            )
            return budget, spent

        budget, spent = await self._db.read(read)
        if spent is None and not spend_without_budget:
            return None
        return BudgetStatus(
            user_id=user_id,
            month=month,
            spent_usd=_from_nano(spent["cost"] if spent else None) or Decimal(0),
            spent_tokens=int(spent["tokens"] or 0) if spent else 0,
            limit_usd=_from_nano(budget["monthly_nanousd"]) if budget else None,
            limit_tokens=int(budget["monthly_tokens"]) if budget and budget["monthly_tokens"] is not None else None,
            cost_unknown_calls=int(spent["unknown"] or 0) if spent else 0,
        )


def _filters(**given: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    for name, value in given.items():
        if value is None:
            continue
        clauses.append({"since_day": "day >= ?", "until_day": "day <= ?"}.get(name, f"{name} = ?"))
        args.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def _totals(r: Row, by: Sequence[GroupBy]) -> UsageTotals:
    def n(key: str) -> int:
        return int(r[key] or 0)

    calls = n("calls")

    def total(key: str) -> int | None:
        """The sum, or None when some call of the group did not report the field (COUNT skips NULLs)."""
        return n(key) if n(key + "_n") == calls else None

    known_cost = _from_nano(r["cost"]) or Decimal(0)
    cost_unknown = n("cost_unknown")
    return UsageTotals(
        group={b: r[_GROUP_COLUMNS[b]] for b in by},
        calls=calls,
        failed_calls=n("failed"),
        input_tokens=total("inp"),
        output_tokens=total("outp"),
        cache_read_tokens=total("cr"),
        cache_write_tokens=total("cw"),
        reasoning_tokens=total("rs"),
        tokens_unknown=n("tok_unknown"),
        cost_usd=None if cost_unknown else known_cost,
        cost_unknown=cost_unknown,
        known=Usage.model_construct(
            input_tokens=n("inp"),
            output_tokens=n("outp"),
            cache_read_tokens=n("cr"),
            cache_write_tokens=n("cw"),
            reasoning_tokens=n("rs"),
        ),
        known_cost_usd=known_cost,
    )
