"""Write and restore a backup archive: tar.gz, a manifest of SHA-256 sums, databases dumped.

Taken while everything runs (`write`), restored only once the whole archive
and every target are checked (`restore`); `postgres` drives PostgreSQL's
client tools for both. This module is the front the command line imports.
"""

from __future__ import annotations

from homeport.backup.restore import RestoreResult, read_manifest, restore_backup
from homeport.backup.write import SQLITE_MAGIC, BackupResult, create_backup

__all__ = [
    "SQLITE_MAGIC",
    "BackupResult",
    "RestoreResult",
    "create_backup",
    "read_manifest",
    "restore_backup",
]
