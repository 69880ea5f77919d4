"""Tool-name mapping: canonical MCP names (``server.tool``, up to 128 chars, dots) -> a provider's rule.

Each canonical name gets the first of three forms that applies:

* **verbatim**: the rule accepts the canonical name (``git_status`` everywhere, ``git.status`` on Gemini);
* **readable**: characters outside ``[A-Za-z0-9_-]`` become ``_`` (a leading non-letter gets ``t_``), when
  the result fits the rule and is not taken by another tool of the toolset: ``add.add`` -> ``add_add``;
* **hashed**: the readable form, shortened so that the tool part after the last dot survives, plus a hash
  of the FULL canonical name (never a bare truncation): names over the length limit, names with nothing
  readable left (``日本.語``), and the losers of a collision.

Collisions are settled by :func:`assign_names`, a pure function of the SET of names: the same toolset maps
the same way whatever its order, in every process, before and after a resume. A verbatim name always
keeps itself; among several tools whose readable forms coincide (``a.b_c``, ``a_b.c``), the smallest
canonical name in code-point order keeps the readable form and the others are hashed; hashed names that
still collide get longer hashes.

What "stable" means here (the choice): adding a tool renames an existing tool only when the newcomer
claims the existing tool's readable name and wins (it has that very name verbatim, or it sorts first).
Never renaming would need the compiler to remember the order in which tools arrived, and then one toolset
could map two ways in two processes (a resumed session, a second service instance) — worse than the rare
rename. History stores canonical names and every request renders tools and history with the same map, so
one request is always consistent; the tool list changing already invalidates the provider's prompt cache.

Names from older routekit versions, which hashed every name that was not verbatim (``add_add_9f3e1a2b``),
still map back: :func:`legacy_name` gives that form and the toolset recognises it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from providers.profiles import NameRule

DEFAULT_DIGITS = 8  # 32 bits: collisions inside one toolset are resolved by assign_names
_ILLEGAL = re.compile(r"[^A-Za-z0-9_-]")
_READABLE = re.compile(r"[A-Za-z0-9]")


def _cleaned(canonical: str) -> str:
    cleaned = _ILLEGAL.sub("_", canonical)
    if not cleaned[:1].isalpha() or not cleaned[:1].isascii():
        cleaned = "t_" + cleaned
    return cleaned


def hashed_name(canonical: str, rule: NameRule, digits: int = DEFAULT_DIGITS) -> str:
    """``canonical`` cleaned and shortened for ``rule``, with ``digits`` hex digits of its SHA-256."""
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:digits]
    budget = rule.max_length - len(digest) - 1
    if budget < 3:
        return ("t" + digest)[: rule.max_length]
    server, _, tool = canonical.rpartition(".")
    cleaned_tool = _ILLEGAL.sub("_", tool)
    cleaned = _cleaned(canonical)
    if len(cleaned) > budget:
        if server and len(cleaned_tool) + 2 < budget:
            head = cleaned[: budget - len(cleaned_tool) - 1]
            cleaned = f"{head}_{cleaned_tool}"
        else:
            cleaned = cleaned[:budget]
    return f"{cleaned}_{digest}"


def readable_name(canonical: str, rule: NameRule) -> str | None:
    """The cleaned name without a hash, or None when it does not fit ``rule`` or has nothing readable."""
    if _READABLE.search(canonical) is None:
        return None
    cleaned = _cleaned(canonical)
    return cleaned if rule.accepts(cleaned) else None


def map_name(canonical: str, rule: NameRule) -> str:
    """The name of ``canonical`` on its own (no other tool to collide with): verbatim, readable or hashed."""
    if rule.accepts(canonical):
        return canonical
    return readable_name(canonical, rule) or hashed_name(canonical, rule)


def legacy_name(canonical: str, rule: NameRule) -> str:
    """What routekit up to this change sent for a name ``rule`` does not accept verbatim (always hashed)."""
    return hashed_name(canonical, rule)


def assign_names(canonicals: Iterable[str], rule: NameRule) -> dict[str, str]:
    """Collision-free provider names for distinct canonical names, independent of their order (see above)."""
    names = list(dict.fromkeys(canonicals))
    fixed: dict[str, str] = {c: c for c in names if rule.accepts(c)}
    claims: dict[str, list[str]] = {}
    to_hash: list[str] = []
    for canonical in names:
        if canonical in fixed:
            continue
        readable = readable_name(canonical, rule)
        if readable is None:
            to_hash.append(canonical)
        else:
            claims.setdefault(readable, []).append(canonical)
    for readable, group in claims.items():
        winner = None if readable in fixed else min(group)
        if winner is not None:
            fixed[winner] = readable
        to_hash.extend(c for c in group if c != winner)
    digits = dict.fromkeys(to_hash, DEFAULT_DIGITS)
    max_digits = min(64, rule.max_length - 4)
    while True:
        hashed = {c: hashed_name(c, rule, d) for c, d in digits.items()}
        owners: dict[str, list[str]] = {}
        for canonical, name in (*fixed.items(), *hashed.items()):
            owners.setdefault(name, []).append(canonical)
        clashing = [c for group in owners.values() if len(group) > 1 for c in group if c in digits]
        if not clashing:
            return {c: fixed[c] if c in fixed else hashed[c] for c in names}
        for canonical in clashing:
            if digits[canonical] >= max_digits:
                raise ValueError(f"cannot make a unique provider name for {canonical!r}")
            digits[canonical] = min(max_digits, digits[canonical] + 8)
