"""Tool-name mapping: canonical MCP names (``server.tool``, up to 128 chars, dots) -> a provider's rule.

A name the rule accepts is kept verbatim. Any other name is cleaned (characters outside
``[A-Za-z0-9_-]`` become ``_``, a leading non-letter gets ``t_``), shortened so that the tool part after
the last dot survives, and always suffixed with a hash of the FULL canonical name — never a bare
truncation, so two names that clean or truncate alike stay distinct. The map is deterministic (the same
canonical name gives the same provider name in every toolset, so names in stored history still map)
unless a collision inside one toolset forces a longer hash; the toolset then remembers the mapping.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from providers.profiles import NameRule

DEFAULT_DIGITS = 8  # 32 bits: collisions inside one toolset are resolved by assign_names
_ILLEGAL = re.compile(r"[^A-Za-z0-9_-]")


def hashed_name(canonical: str, rule: NameRule, digits: int = DEFAULT_DIGITS) -> str:
    """``canonical`` cleaned and shortened for ``rule``, with ``digits`` hex digits of its SHA-256."""
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:digits]
    budget = rule.max_length - len(digest) - 1
    if budget < 3:
        return ("t" + digest)[: rule.max_length]
    server, _, tool = canonical.rpartition(".")
    cleaned_tool = _ILLEGAL.sub("_", tool)
    cleaned = _ILLEGAL.sub("_", canonical)
    if not cleaned[:1].isalpha() or not cleaned[:1].isascii():
        cleaned = "t_" + cleaned
    if len(cleaned) > budget:
        if server and len(cleaned_tool) + 2 < budget:
            head = cleaned[: budget - len(cleaned_tool) - 1]
            cleaned = f"{head}_{cleaned_tool}"
        else:
            cleaned = cleaned[:budget]
    return f"{cleaned}_{digest}"


def map_name(canonical: str, rule: NameRule, digits: int = DEFAULT_DIGITS) -> str:
    return canonical if rule.accepts(canonical) else hashed_name(canonical, rule, digits)


def assign_names(canonicals: Iterable[str], rule: NameRule) -> dict[str, str]:
    """Collision-free provider names for distinct canonical names, independent of their order.

    When two names collide (a 32-bit hash collision, or a hashed name equal to another tool's verbatim
    name), every hashed member of the group gets a longer hash; verbatim names keep theirs.
    """
    digits = dict.fromkeys(canonicals, DEFAULT_DIGITS)
    max_digits = min(64, rule.max_length - 4)
    while True:
        names = {c: map_name(c, rule, d) for c, d in digits.items()}
        groups: dict[str, list[str]] = {}
        for canonical, name in names.items():
            groups.setdefault(name, []).append(canonical)
        clashing = [group for group in groups.values() if len(group) > 1]
        if not clashing:
            return names
        for group in clashing:
            for canonical in group:
                if names[canonical] != canonical:
                    if digits[canonical] >= max_digits:
                        raise ValueError(f"cannot make a unique provider name for {canonical!r}")
                    digits[canonical] = min(max_digits, digits[canonical] + 8)
