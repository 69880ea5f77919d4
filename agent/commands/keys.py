"""``routekit keys rotate``: re-wrap every data key under a new master key, online and resumable.

Two setups:

* the master key lives in the key file (``$ROUTEKIT_HOME/master.key``, the default): ``rotate`` makes a
  new key version, writes the file as ``new,old`` (atomically, 0600), re-wraps every data key, and then
  drops the old version from the file once nothing uses it;
* the master key comes from ``ROUTEKIT_MASTER_KEY``: the operator puts the new key first
  (``v2:NEW,v1:OLD``) and runs ``rotate``, which re-wraps everything under ``v2`` and says when ``v1`` may
  be removed from the variable. routekit never prints a master key.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Any

import click

from agent.commands._common import (
    EXIT_OK,
    EXIT_USAGE,
    CommandFailed,
    console,
    json_option,
    print_json,
    run_async,
    store_url,
)

_VERSION_NUMBER = re.compile(r"^v(\d+)$")


@click.group("keys")
def keys() -> None:
    """Master-key maintenance.

    \b
    Examples:
      routekit keys rotate
      ROUTEKIT_MASTER_KEY="v2:$NEW,v1:$OLD" routekit keys rotate
    """


@keys.command("rotate")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=200, show_default=True, help="Keys per commit.")
@json_option
def rotate(batch_size: int, as_json: bool) -> None:
    """Re-wrap every stored data key under the newest master key (secrets stay readable throughout).

    With the key file (the default setup) a new master key is generated and the old one removed from the
    file when no data key needs it any more. With ROUTEKIT_MASTER_KEY, put the new key first
    ("v2:NEW,v1:OLD") before running this; afterwards the old entry can be dropped.
    Exit code 2 when some data keys could not be opened with any configured master key.

    \b
    Examples:
      routekit keys rotate
      ROUTEKIT_MASTER_KEY="v2:$NEW_KEY,v1:$OLD_KEY" routekit keys rotate --json
    """
    result = run_async(_rotate, batch_size, as_json=as_json)
    if as_json:
        print_json(result)
    else:
        out = console()
        out.print(
            f"re-wrapped {result['rewrapped']} data keys under master key {result['current']!r}; "
            f"{result['remaining']} still under older keys"
        )
        for note in result["notes"]:
            out.print(note)
        for owner, generation in result["failed"]:
            out.print(f"[red]could not open[/] data key generation {generation} of owner {owner or '(global)'!r}")
    sys.exit(EXIT_USAGE if result["failed"] else EXIT_OK)


async def _rotate(batch_size: int) -> dict[str, Any]:
    from storage import MASTER_KEY_ENV, load_keyring, open_store
    from storage.crypto import KEY_FILE_NAME
    from storage.store import data_home

    notes: list[str] = []
    key_file: Path | None = None
    if os.environ.get(MASTER_KEY_ENV) is not None:
        store = await open_store(store_url())
    else:
        key_file = data_home() / KEY_FILE_NAME
        if not key_file.exists():
            raise CommandFailed(
                f"no master key to rotate: {key_file} does not exist and {MASTER_KEY_ENV} is not set "
                "(nothing has been encrypted yet)"
            )
        old = load_keyring(key_file.parent, create=False)
        version = _next_version(old.versions)
        ring = old.with_current(version, secrets.token_bytes(32))
        # The new key must be on disk before any data key is wrapped with it.
        _write_key_file(key_file, ring)
        store = await open_store(store_url(), keyring=ring)
    try:
        ring = store.keys.keyring
        report = await store.keys.rotate_master_key(batch_size=batch_size)
        in_use = await store.keys.versions_in_use()
    finally:
        await store.close()
    older = sorted(v for v in ring.versions if v != ring.current)
    if key_file is not None and report.remaining == 0 and not report.failed:
        _write_key_file(key_file, ring, only_current=True)
        notes.append(f"{key_file} now holds only master key {ring.current!r}")
    elif key_file is None and report.remaining == 0 and older:
        notes.append(f"no data key uses {', '.join(older)} any more: remove it from {MASTER_KEY_ENV}")
    elif key_file is None and not older:
        notes.append(
            f"{MASTER_KEY_ENV} holds one key, so everything is already under it. To rotate, put a new key first: "
            f'{MASTER_KEY_ENV}="v2:NEWKEY,{ring.current}:OLDKEY" (generate NEWKEY with: '
            'python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())")'
        )
    return {
        "current": ring.current,
        "rewrapped": report.rewrapped,
        "remaining": report.remaining,
        "failed": [list(item) for item in report.failed],
        "versions_in_use": in_use,
        "source": "key_file" if key_file is not None else "environment",
        "notes": notes,
    }


def _next_version(versions: tuple[str, ...]) -> str:
    numbers = [int(m.group(1)) for v in versions if (m := _VERSION_NUMBER.match(v))]
    return f"v{max(numbers, default=0) + 1}"


def _write_key_file(path: Path, ring: Any, *, only_current: bool = False) -> None:
    """Write the keyring to ``path`` atomically with mode 0600 (current version first)."""
    versions = [ring.current] + ([] if only_current else [v for v in ring.versions if v != ring.current])
    text = ",".join(f"{v}:{base64.b64encode(ring.key(v)).decode()}" for v in versions) + "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
