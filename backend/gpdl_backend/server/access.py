"""Who may read a location: server configs per role, under each config's base path.

PostgreSQL's own rule for files on the server is COPY's: a superuser, or a
member of ``pg_read_server_files``. gpdl keeps it for a location named
without a server config (a local path only: a remote one would use the
server's own network identity and credentials, so only a superuser may).
Everyone else reads through a server config (PXF's ``SERVER=``) that names
their role and whose base path holds the location (PXF's ``pxf.fs.basePath``):
a DBA opens ``s3://bucket/images`` or ``/data/images`` to a role, nothing more.

A config file is a JSON object::

    {"base_path": "s3://bucket/images", "roles": ["analysts"],
     "storage_options": {"key": "...", "secret": "...", "client_kwargs": {...}}}

An older flat file (storage options only) opens to superusers alone.

Runs inside the database server: imports fsspec only.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from fsspec.core import split_protocol

from gpdl_backend.errors import UsageError

__all__ = ["Caller", "ServerConfig", "caller", "check_location", "check_server_name",
           "load_server_config", "parse_server_config"]

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
READ_SERVER_FILES = "pg_read_server_files"
"""PostgreSQL's role for reading files on the server (as COPY FROM a file does)."""


def check_server_name(name: str) -> str:
    """Return ``name`` if it is a safe config name (no path separators), else raise UsageError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsageError(f"server name {name!r} is invalid: use letters, digits, '_', '.', '-'")
    return name


@dataclass(frozen=True)
class ServerConfig:
    """One named config: who may use it, where it reaches, and fsspec's storage options."""

    name: str
    base_path: str | None = None
    roles: tuple[str, ...] = ()
    storage_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Caller:
    """The calling role, as far as reading locations goes."""

    role: str
    superuser: bool
    reads_server_files: bool  # superuser or a member of pg_read_server_files
    config_roles: frozenset[str] = frozenset()  # the config's roles this role belongs to


def parse_server_config(name: str, value: Any) -> ServerConfig:
    """The config ``name`` from its file's JSON value.

    Raises:
        UsageError: not an object, or ``base_path`` / ``roles`` /
            ``storage_options`` of the wrong type (never quoting secrets).
    """
    if not isinstance(value, dict):
        raise UsageError(f"server {name!r}: the config must hold a JSON object")
    if "storage_options" not in value:  # a flat file from before roles: superusers only
        return ServerConfig(name, storage_options=value)
    unknown = sorted(set(value) - {"base_path", "roles", "storage_options"})
    base, roles, options = value.get("base_path"), value.get("roles", []), value["storage_options"]
    if unknown:
        raise UsageError(f"server {name!r}: unknown config keys {unknown}")
    if base is not None and (not isinstance(base, str) or not base):
        raise UsageError(f"server {name!r}: base_path must be a non-empty path or URL")
    if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
        raise UsageError(f"server {name!r}: roles must be a list of role names")
    if not isinstance(options, dict):
        raise UsageError(f"server {name!r}: storage_options must be a JSON object")
    return ServerConfig(name, base, tuple(roles), options)


def load_server_config(servers_dir: str, server: str) -> ServerConfig:
    """Read config ``server`` from ``<servers_dir>/<server>.json``.

    Raises:
        UsageError: a bad name, a missing file, or no valid config in it (the
            message never shows the file's contents).

    Example:
        >>> load_server_config("/etc/gpdl/servers", "minio").base_path
        's3://fashion'
    """
    check_server_name(server)
    path = os.path.join(servers_dir, f"{server}.json")
    if not os.path.isfile(path):
        raise UsageError(f"server {server!r} is not configured: no {server}.json in {servers_dir}")
    value, problem = _read_json(path)
    if problem is not None:
        raise UsageError(f"server {server!r}: {problem}")  # outside the except: nothing chained
    return parse_server_config(server, value)


def _read_json(path: str) -> tuple[Any, str | None]:
    """``(value, None)``, or ``(None, problem)`` without quoting the file's text."""
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file), None
    except OSError as error:
        return None, f"cannot read {path}: {error.strerror}"
    except ValueError as error:  # JSONDecodeError keeps the whole text in .doc
        return None, f"{path} is not valid JSON (line {getattr(error, 'lineno', '?')})"


_CALLER = f"""
SELECT current_user::text AS role, r.rolsuper AS superuser,
       r.rolsuper OR pg_has_role(current_user, '{READ_SERVER_FILES}', 'MEMBER') AS files,
       ARRAY(SELECT g.rolname::text FROM pg_roles g
             WHERE g.rolname = ANY($1) AND pg_has_role(current_user, g.oid, 'MEMBER'))
           AS member_of
FROM pg_roles r WHERE r.rolname = current_user
"""


def caller(plpy: Any, config: ServerConfig | None) -> Caller:
    """The calling role and which of ``config``'s roles it belongs to, from the catalog."""
    plan = plpy.prepare(_CALLER, ["text[]"])
    row = plpy.execute(plan, [list(config.roles) if config else []])[0]
    return Caller(row["role"], row["superuser"], row["files"],
                  frozenset(row["member_of"] or ()))


def check_location(location: str, config: ServerConfig | None, who: Caller) -> None:
    """Raise UsageError unless ``who`` may read ``location`` (through ``config``, if any).

    Decided from the names alone, before the location is opened, so a refusal
    says nothing about what exists there.

    Example:
        >>> check_location("s3://b/images/train", config, Caller("alice", False, False,
        ...                frozenset({"analysts"})))  # config: base s3://b/images, analysts
    """
    if who.superuser:
        return
    if config is None:
        if _protocol(location) != _LOCAL:
            raise UsageError(
                f"role {who.role} may read {location} only through a server config: a "
                f"superuser adds one (gpdl servers add NAME --base-path URL --role "
                f"{who.role}) and the load names it (server => 'NAME')")
        if not who.reads_server_files:
            raise UsageError(
                f"role {who.role} may not read files on the database server at {location}: "
                f"name a server config whose base path holds it (server => 'NAME'), or a "
                f"superuser grants {READ_SERVER_FILES}")
        return
    if not who.config_roles:
        allowed = ", ".join(config.roles) if config.roles else "superusers only"
        raise UsageError(f"server config {config.name!r} does not allow role {who.role} "
                         f"(it allows: {allowed})")
    if config.base_path is None:
        raise UsageError(f"server config {config.name!r} has no base path, so it opens "
                         f"nothing to role {who.role}: a superuser adds one (--base-path)")
    if not _inside(location, config.base_path):
        raise UsageError(f"location {location} is outside server config {config.name!r}'s "
                         f"base path {config.base_path}")


_ALIASES = {"local": "file", "s3a": "s3", "gs": "gcs"}
"""fsspec's other names for one protocol; any other difference (``http`` vs ``https``) counts."""
_LOCAL = "file"


def _protocol(location: str) -> str:
    """The location's protocol, aliases folded; a bare path is ``file``."""
    protocol = split_protocol(location)[0] or _LOCAL
    return _ALIASES.get(protocol, protocol)


def _inside(location: str, base: str) -> bool:
    """Whether ``location`` is ``base`` or below it (same protocol, whole path components).

    Local paths are compared resolved (symlinks, ``..``). A remote path with a
    ``.`` or ``..`` component (percent-encoded too) is never inside: an HTTP
    server resolves them, an object store does not, so neither reading is safe.
    """
    if _protocol(location) != _protocol(base):
        return False
    path, root = (split_protocol(p)[1] for p in (location, base))
    if _protocol(location) == _LOCAL:
        path, root = (os.path.realpath(p) for p in (path, root))
    elif any(unquote(part) in (".", "..") for part in path.split("/")):
        return False
    path, root = path.rstrip("/"), root.rstrip("/")
    return not root or path == root or path.startswith(root + "/")
