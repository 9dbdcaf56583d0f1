"""Local state readable by its owner alone (DESIGN rule 6).

`var/` holds the SQLite database (every user's mail and tracking data), the
token keys, the key that decrypts stored mailbox passwords and the hit spool.
New files there are created owner-only by whoever creates them; this module
also repairs what an older version or a careless copy left readable to others,
at every start, with a log line naming each file it changed.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def make_private(path: Path) -> None:
    """Take group and other permissions off `path` if it has any, saying so in the log."""
    try:
        mode = stat.S_IMODE(path.lstat().st_mode)
    except FileNotFoundError:
        return
    if path.is_symlink() or not mode & 0o077:
        return
    wanted = mode & (PRIVATE_DIR if path.is_dir() else PRIVATE_FILE)
    try:
        os.chmod(path, wanted)
    except OSError as exc:
        # An immutable or read-only file must not stop start-up: the collector can
        # still answer (and spool) hits. Say so loudly; the operator fixes the mode.
        log.error(
            "%s is open to other users (mode %o) and could not be changed: %s", path, mode, exc
        )
        return
    log.warning("%s was open to other users (mode %o); it is now %o", path, mode, wanted)


def secure_local_state(var_dir: Path) -> None:
    """Create `var_dir` owner-only, and make it and every file directly in it owner-only."""
    var_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    make_private(var_dir)
    for entry in var_dir.iterdir():
        if entry.is_file():
            make_private(entry)
