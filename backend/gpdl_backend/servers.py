"""Named object-store configs on the database host (PXF's ``SERVER=``).

A config is ``<servers_dir>/<name>.json``: fsspec storage options
(credentials, endpoint), the base path it opens and the roles that may use it
(the file's format and the rules: ``server.access``). SQL names the config,
never the secrets.
"""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

from gpdl_backend.embedded import SERVER_USER
from gpdl_backend.errors import UsageError
from gpdl_backend.server.access import ServerConfig, check_server_name, load_server_config


def add_server(
    servers_dir: Path,
    name: str,
    options: dict,
    owner: str | None = None,
    base_path: str | None = None,
    roles: tuple[str, ...] = (),
) -> Path:
    """Write (or replace) config ``name``; readable by the database server's OS user only.

    Superusers may use every config; other roles only a config that names
    them (or a role they belong to), for locations under its base path
    (``access.check_location``).

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
        base_path: the path or URL the config opens to ``roles``
            (``s3://bucket/images``, ``/data/images``). Defaults to None
            (superusers only).
        roles: the database roles that may use it. Defaults to () (superusers only).

    Returns:
        The config file's path.

    Raises:
        UsageError: an unsafe name, an empty base path or role name; ``owner``
            unknown on this machine, or not the caller when the caller is not
            root (the server could not read it).

    Example:
        >>> add_server(Path("/var/lib/gpdl/servers"), "minio", {"anon": True}, owner="gpadmin",
        ...            base_path="s3://fashion", roles=("analysts",))
        PosixPath('/var/lib/gpdl/servers/minio.json')
    """
    check_server_name(name)
    if base_path is not None and not base_path:
        raise UsageError("--base-path must be a path or URL, not empty")
    if not all(roles):
        raise UsageError("--role must name a database role, not be empty")
    entry = _owner_entry(owner)
    servers_dir.mkdir(parents=True, exist_ok=True)
    path = servers_dir / f"{name}.json"
    config = {"base_path": base_path, "roles": list(dict.fromkeys(roles)),
              "storage_options": {k: v for k, v in options.items() if v is not None}}
    text = json.dumps(config, indent=2)
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


def describe_server(servers_dir: Path, name: str) -> str:
    """One line saying whom config ``name`` opens what to; never its storage options."""
    try:
        config: ServerConfig = load_server_config(str(servers_dir), name)
    except UsageError as error:
        return f"{name}: {error}"
    roles = ", ".join(config.roles) if config.roles else "none"
    return (f"{name}: base path {config.base_path or '(none)'}; roles {roles} "
            "(superusers: any location)")
