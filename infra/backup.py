"""Logical backup and restore of a network's database (`pg_dump` / `pg_restore`).

A dump is one consistent snapshot (pg_dump runs in one REPEATABLE READ transaction), so the
ledger's invariants and its hash chain hold in it exactly as they held at that instant. It
suits a network whose database fits a dump window; a larger one uses `pg_basebackup` with WAL
archiving (docs/backup.md). The key files of the data dir (the master key that seals partner
and webhook secrets, the JWT signing key) are NOT in the dump: they are backed up apart, so a
stolen dump opens no secret.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from infra import embedded
from infra.settings import mask_dsn

DUMP_TIMEOUT_S = 3600.0
RESTORE_TIMEOUT_S = 3600.0
FORMAT = "custom"  # compressed, restorable table by table, checked by pg_restore --list


class BackupFailed(Exception):
    """pg_dump or pg_restore refused or failed; the message has its stderr (no password)."""


def tool(name: str) -> Path:
    """The PostgreSQL client `name`: pgserver's own (the version of the embedded server) first,
    else the one on PATH."""
    bundled = embedded.BIN_DIR / name
    if bundled.exists():
        return bundled
    found = shutil.which(name)
    if found is None:
        raise BackupFailed(f"{name} not found: install the PostgreSQL client tools")
    return Path(found)


def dump(dsn: str, out: Path, *, timeout_s: float = DUMP_TIMEOUT_S) -> int:
    """Write a snapshot of the database at `dsn` to `out` (replaced only once complete);
    returns its size in bytes."""
    partial = out.with_name(out.name + ".partial")
    _run(
        [str(tool("pg_dump")), f"--format={FORMAT}", "--no-owner", f"--file={partial}", dsn],
        dsn,
        timeout_s,
    )
    _run([str(tool("pg_restore")), "--list", str(partial)], dsn, timeout_s)  # readable whole
    partial.replace(out)
    return out.stat().st_size


def restore(dump_file: Path, dsn: str, *, timeout_s: float = RESTORE_TIMEOUT_S) -> None:
    """Restore `dump_file` into the EMPTY database at `dsn`, in one transaction: it lands whole
    or not at all."""
    if not dump_file.is_file():
        raise BackupFailed(f"{dump_file} is not a file")
    _run(
        [
            str(tool("pg_restore")),
            "--no-owner",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={dsn}",
            str(dump_file),
        ],
        dsn,
        timeout_s,
    )


def _run(command: list[str], dsn: str, timeout_s: float) -> None:
    try:
        done = subprocess.run(  # noqa: S603 (our own arguments, no shell)
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise BackupFailed(f"{Path(command[0]).name} took over {timeout_s:.0f} s") from None
    if done.returncode != 0:
        # The DSN may carry a password: the message shows it masked.
        detail = done.stderr.strip().replace(dsn, mask_dsn(dsn))[-2000:]
        raise BackupFailed(f"{Path(command[0]).name} failed ({done.returncode}): {detail}")
