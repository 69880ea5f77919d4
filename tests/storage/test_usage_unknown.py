"""Reports: a sum over calls where any call left the field unknown is null (never a silent 0 or a partial sum)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from providers.types import Usage
from storage import SQLStore, UsageEntry

pytestmark = pytest.mark.anyio


async def test_each_field_is_null_once_any_call_left_it_unknown(store: SQLStore) -> None:
    user = await store.users.create("reporter")
    priced = Usage(input_tokens=1000, output_tokens=100, cache_read_tokens=200, reasoning_tokens=0)
    no_cache = Usage(input_tokens=10, output_tokens=5)  # cache and reasoning not reported
    await store.usage.record_many(
        [
            UsageEntry(user.id, "openai", "gpt-4o-mini", priced),
            UsageEntry(user.id, "openai", "gpt-4o-mini", priced),
            UsageEntry(user.id, "anthropic", "no-such-model", no_cache),  # not priced: cost unknown
        ]
    )
    groups = {t.group["provider"]: t for t in await store.usage.report(["provider"], user_id=user.id)}
    openai = groups["openai"]
    assert (openai.input_tokens, openai.output_tokens, openai.cache_read_tokens) == (2000, 200, 400)
    assert openai.reasoning_tokens == 0  # reported as 0 by both calls: a real 0
    assert openai.cache_write_tokens is None  # reported by neither
    assert openai.cost_usd is not None
    assert openai.cost_usd > 0
    assert openai.cost_unknown == 0
    [total] = await store.usage.report([], user_id=user.id)
    assert (total.input_tokens, total.output_tokens) == (2010, 205)  # every call reported these
    assert total.cache_read_tokens is None  # one call did not: not 400
    assert total.reasoning_tokens is None
    assert total.tokens_unknown == 0
    assert total.cost_usd is None  # one call could not be priced: not the priced calls' sum
    assert total.cost_unknown == 1
    assert total.known.cache_read_tokens == 400  # what is known for sure, apart
    assert total.known_cost_usd == openai.cost_usd
    assert total.known_cost_usd > Decimal(0)
