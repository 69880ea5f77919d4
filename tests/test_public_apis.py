"""routekit's packages use only the public names of the SDKs and libraries they import (issue 12, "public APIs
only"): no private module, no underscore name imported from another package, no ``getattr(x, "_name")``, no
override or call of a parent's underscore method. The exceptions are the one shim per SDK
(``providers/_compat_<sdk>.py``, ``mcp_bridge/_compat_mcp.py``), each pinned by its own tests, and names an SDK
documents as public despite the underscore.

What this cannot see: an underscore attribute read off an SDK object held in a variable (``conn._x``); reviews
and the shims' own tests cover those.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("providers", "agent", "mcp_bridge", "storage")
SHIMS = {"providers/_compat_ollama.py", "mcp_bridge/_compat_mcp.py"}
# Underscore names an SDK documents as public (none used: anthropic's documented ``_request_id`` is read from the
# raw response's headers instead, so that no underscore name needs an exception).
DOCUMENTED_PUBLIC: frozenset[str] = frozenset()


def _own(module: str) -> bool:
    return module.split(".")[0] in PACKAGES


def _private_part(dotted: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in dotted.split("."))


def _problems(path: Path, base: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(base)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [f"{where}: import {a.name}" for a in node.names if not _own(a.name) and _private_part(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and not _own(node.module) and node.level == 0:
            if _private_part(node.module):
                found.append(f"{where}: from {node.module} import ...")
            found += [
                f"{where}: from {node.module} import {a.name}"
                for a in node.names
                if a.name.startswith("_") and not a.name.startswith("__")
            ]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr"):
            if len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
                name = node.args[1].value
                if name.startswith("_") and not name.startswith("__") and name not in DOCUMENTED_PUBLIC:
                    found.append(f"{where}: {node.func.id}(..., {name!r})")
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "super"
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{where}: super().{node.attr}")
    return found


def _modules() -> list[Path]:
    """Every module of routekit's packages but the shims (each SDK's one, pinned by its own tests)."""
    found = (p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))
    return sorted(p for p in found if str(p.relative_to(ROOT)) not in SHIMS)


def test_the_shims_are_where_the_list_says() -> None:
    for shim in SHIMS:
        assert (ROOT / shim).is_file(), shim


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_names_of_other_packages(path: Path) -> None:
    assert _problems(path) == []


def test_the_check_sees_what_it_is_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from mcp.client._probe import negotiate_auto\n"
        "from ollama import _client\n"
        "import aiosqlite._internal\n"
        "x = getattr(loop, '_ready', None)\n"
        "y = getattr(message, '_request_id', None)\n"
        "class P(Base):\n"
        "    async def _initialize(self):\n"
        "        await super()._initialize()\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "from providers._http import sdk_http_client\n"
    )
    problems = [line.split(": ", 1)[1] for line in _problems(sample, tmp_path)]
    assert problems == [
        "from mcp.client._probe import ...",
        "from ollama import _client",
        "import aiosqlite._internal",
        "getattr(..., '_ready')",
        "getattr(..., '_request_id')",
        "super()._initialize",
    ]
