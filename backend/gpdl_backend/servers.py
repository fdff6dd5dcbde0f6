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


def add_server(servers_dir: Path, name: str, options: dict, owner: str | None = None) -> Path:
    """Write (or replace) config ``name``; readable by the database server's OS user only.

    The file is mode 0600, so it must belong to the OS user the database
    server runs as, which is the one that opens it: ``owner``, as the
    server's own Python reports it (``gpdl install`` records it in
    ``gpdl.config`` as ``server_user``, next to ``servers_dir``; on
    Greenplum the coordinator's user, who runs the segments too). Asking
    the server is what works for every setup: the embedded server (user
    ``gpdl`` under root, else the caller), a packaged PostgreSQL
    (``postgres``), a Greenplum cluster (``gpadmin``).

    Args:
        servers_dir: the directory the server reads configs from.
        name: the config's name, used in SQL as ``server => 'name'``.
        options: fsspec storage options, e.g. ``{"key": ..., "secret": ...,
            "client_kwargs": {"endpoint_url": ...}}``; ``None`` values are dropped.
        owner: the database server's OS user. As root the file (and the
            directory) is given to that user; otherwise the caller must be
            that user. Defaults to None: the embedded server's user
            (``gpdl``) when running as root and that user exists, else the
            caller keeps the file.

    Returns:
        The config file's path.

    Raises:
        UsageError: an unsafe name; ``owner`` unknown on this machine, or not
            the caller when the caller is not root (the server could not read it).

    Example:
        >>> add_server(Path("/var/lib/gpdl/servers"), "minio", {"anon": True}, owner="gpadmin")
        PosixPath('/var/lib/gpdl/servers/minio.json')
    """
    check_server_name(name)
    entry = _owner_entry(owner)
    servers_dir.mkdir(parents=True, exist_ok=True)
    path = servers_dir / f"{name}.json"
    text = json.dumps({k: v for k, v in options.items() if v is not None}, indent=2)
    # Created 0600 from the start (never readable by others, even briefly), then
    # renamed over any previous config so a reader sees the old or the new one.
    partial = servers_dir / f".{name}.json.partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    if entry is not None and os.geteuid() == 0:
        os.chown(partial, entry.pw_uid, entry.pw_gid)
        os.chown(servers_dir, entry.pw_uid, entry.pw_gid)
    os.replace(partial, path)
    return path


def _owner_entry(owner: str | None) -> pwd.struct_passwd | None:
    """The password entry of ``owner``, checked to be one this process can write for."""
    if owner is None:
        if os.geteuid() != 0:
            return None
        owner = SERVER_USER  # the embedded server's, where it exists
        try:
            return pwd.getpwnam(owner)
        except KeyError:
            return None
    try:
        entry = pwd.getpwnam(owner)
    except KeyError:
        raise UsageError(
            f"the database server runs as OS user {owner!r}, unknown on this machine: "
            "write the server config on the database host") from None
    if os.geteuid() not in (0, entry.pw_uid):
        raise UsageError(
            f"the database server runs as OS user {owner!r} and could not read a config "
            f"written by {pwd.getpwuid(os.geteuid()).pw_name!r}: run this as root or as {owner}")
    return entry


def list_servers(servers_dir: Path) -> list[str]:
    """Names of the configs in ``servers_dir``."""
    return sorted(p.stem for p in servers_dir.glob("*.json")) if servers_dir.exists() else []
