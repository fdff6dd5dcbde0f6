"""Named object-store configs on the database host (PXF's ``SERVER=``).

A config is ``<servers_dir>/<name>.json`` holding fsspec storage options
(credentials, endpoint). SQL names the config, never the secrets.
"""

from __future__ import annotations

import json
import os
import pwd
import re
from pathlib import Path

from gpdl_backend.embedded import SERVER_USER
from gpdl_backend.errors import UsageError

# The names the accessor accepts in ``server => ...`` (no path separators).
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def check_server_name(name: str) -> str:
    """Return ``name`` if it is a safe config name, else raise UsageError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsageError(f"server name {name!r} is invalid: use letters, digits, '_', '.', '-'")
    return name


def add_server(servers_dir: Path, name: str, options: dict) -> Path:
    """Write (or replace) config ``name``; readable by the server's user only.

    Args:
        servers_dir: the directory the server reads configs from.
        name: the config's name, used in SQL as ``server => 'name'``.
        options: fsspec storage options, e.g. ``{"key": ..., "secret": ...,
            "client_kwargs": {"endpoint_url": ...}}``; ``None`` values are dropped.

    Returns:
        The config file's path.

    Raises:
        UsageError: an unsafe name.

    Example:
        >>> add_server(Path("/var/lib/gpdl/servers"), "minio", {"anon": True})
        PosixPath('/var/lib/gpdl/servers/minio.json')
    """
    check_server_name(name)
    servers_dir.mkdir(parents=True, exist_ok=True)
    path = servers_dir / f"{name}.json"
    text = json.dumps({k: v for k, v in options.items() if v is not None}, indent=2)
    # Created 0600 from the start (never readable by others, even briefly), then
    # renamed over any previous config so a reader sees the old or the new one.
    partial = servers_dir / f".{name}.json.partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    if os.geteuid() == 0:
        try:
            entry = pwd.getpwnam(SERVER_USER)
        except KeyError:
            entry = None  # no embedded server user: an external server's own setup
        if entry is not None:
            os.chown(partial, entry.pw_uid, entry.pw_gid)
            os.chown(servers_dir, entry.pw_uid, entry.pw_gid)
    os.replace(partial, path)
    return path


def list_servers(servers_dir: Path) -> list[str]:
    """Names of the configs in ``servers_dir``."""
    return sorted(p.stem for p in servers_dir.glob("*.json")) if servers_dir.exists() else []
