"""Named object-store configs on the database host (PXF's ``SERVER=``).

A config is ``<servers_dir>/<name>.json`` holding fsspec storage options
(credentials, endpoint). SQL names the config, never the secrets.
"""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

from gpdl_backend.embedded import SERVER_USER
from gpdl_backend.images.accessor import check_server_name


def add_server(servers_dir: Path, name: str, options: dict) -> Path:
    """Write (or replace) config ``name``; readable by the server's user only.

    Returns:
        The config file's path.
    """
    check_server_name(name)
    servers_dir.mkdir(parents=True, exist_ok=True)
    path = servers_dir / f"{name}.json"
    path.write_text(json.dumps({k: v for k, v in options.items() if v is not None}, indent=2))
    path.chmod(0o600)
    if os.geteuid() == 0:
        try:
            entry = pwd.getpwnam(SERVER_USER)
        except KeyError:
            return path  # no embedded server user: an external server's own setup
        os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chown(servers_dir, entry.pw_uid, entry.pw_gid)
    return path


def list_servers(servers_dir: Path) -> list[str]:
    """Names of the configs in ``servers_dir``."""
    return sorted(p.stem for p in servers_dir.glob("*.json")) if servers_dir.exists() else []
