"""Object-store credentials: ``add_server`` (``gpdl servers add`` from Python)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpdl_backend.client import session
from gpdl_backend.errors import UsageError
from gpdl_jupyter.api._common import resolve
from gpdl_jupyter.sqltext import ShownSql, call_text, shown

_SERVER_SIDE = ("SELECT key, value FROM gpdl.config "
                "WHERE key IN ('servers_dir', 'server_user')")


def servers_dir(*, dsn: str | None = None) -> Path:
    """Where the database reads named object-store configs (recorded by ``gpdl install``).

    Raises:
        UsageError: gpdl is not installed in that database.
    """
    return _recorded(dsn)[0]


def _recorded(dsn: str | None, roles: tuple[str, ...] = ()) -> tuple[Path, str]:
    """``(servers_dir, server_user)`` recorded by ``gpdl install`` in the database.

    Raises:
        UsageError: gpdl is not installed there, or installed by a gpdl that
            recorded neither; one of ``roles`` is not a role of that database.
    """
    with session(resolve(dsn, False)) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('gpdl.config') IS NOT NULL")
        if not cur.fetchone()[0]:
            raise UsageError("gpdl is not installed in this database: run gpdl install")
        cur.execute(_SERVER_SIDE)
        recorded = dict(cur.fetchall())
        cur.execute("SELECT r FROM unnest(%s::text[]) r "
                    "WHERE r NOT IN (SELECT rolname FROM pg_roles)", (list(roles),))
        unknown = [row[0] for row in cur.fetchall()]
    if unknown:
        raise UsageError(f"no role {unknown[0]!r} in this database: create it, or name "
                         "another with --role")
    missing = [k for k in ("servers_dir", "server_user") if k not in recorded]
    if missing:
        raise UsageError(f"this database records no {' or '.join(missing)}: "
                         "run gpdl install again")
    return Path(recorded["servers_dir"]), recorded["server_user"]


def add_server(
    name: str,
    *,
    endpoint_url: str | None = None,
    key: str | None = None,
    secret: str | None = None,
    region: str | None = None,
    options: dict[str, Any] | None = None,
    base_path: str | None = None,
    roles: tuple[str, ...] = (),
    servers_dir: str | Path | None = None,
    dsn: str | None = None,
    show_sql: bool = False,
) -> Path | ShownSql:
    """Write a named object-store config where the database reads it (PXF's ``SERVER=``).

    ``%gpdl load s3://bucket/path TABLE --server NAME`` then reads with these
    credentials; SQL only ever names the config. The file is written on this
    machine, in the ``servers_dir`` that ``gpdl install`` recorded in the
    database, mode 0600 and owned by the OS user the database server runs
    as (also recorded by ``gpdl install``): use it where the database runs
    here (the embedded server, a local PostgreSQL, a Greenplum coordinator);
    for a cluster, put the file on every segment host too (``gpdl servers
    add`` there).

    Args:
        name: the config's name (letters, digits, ``_``, ``.``, ``-``).
        endpoint_url: an S3-compatible server's URL (MinIO, moto...). Defaults
            to None (AWS S3).
        key: access key id. Defaults to None.
        secret: secret access key. Defaults to None.
        region: the region name. Defaults to None.
        options: more fsspec storage options, merged last. Defaults to None.
        base_path: the path or URL the config opens to ``roles``
            (``s3://bucket/images``, ``/data/images``). Defaults to None.
        roles: the database roles (or groups) that may use it, for
            locations under ``base_path``. Defaults to () (superusers only,
            who read any location).
        servers_dir: write there instead. Defaults to None (the directory
            recorded in the database).
        dsn: the database. Defaults to None (the usual resolution order).
        show_sql: return what would run instead of running it. Defaults to False.

    Returns:
        The config file's path.

    Raises:
        UsageError: an unsafe name, a role the database does not have, gpdl
            not installed in the database, or a server OS user this process
            cannot write a config for.

    Example:
        >>> add_server("minio", endpoint_url="http://127.0.0.1:9000", key="K", secret="S")
        PosixPath('/var/lib/gpdl/servers/minio.json')
    """
    from gpdl_backend import servers

    servers.check_server_name(name)
    config: dict[str, Any] = {"key": key, "secret": secret}
    client_kwargs = {k: v for k, v in (("endpoint_url", endpoint_url),
                                       ("region_name", region)) if v}
    if client_kwargs:
        config["client_kwargs"] = client_kwargs
    config.update(options or {})
    if show_sql:
        url = resolve(dsn, True)
        where = str(servers_dir) if servers_dir else "<servers_dir>"
        return shown([f"{_SERVER_SIDE};",
                      call_text("gpdl_backend.servers.add_server", url, where, name,
                                "<options: credentials not shown>", owner="<server_user>",
                                base_path=base_path, roles=tuple(roles)),
                      f"-- writes {where}/{name}.json (mode 0600, owned by <server_user>) "
                      "on this machine"])
    recorded_dir, owner = _recorded(dsn, roles)
    return servers.add_server(Path(servers_dir) if servers_dir else recorded_dir, name, config,
                              owner=owner, base_path=base_path, roles=tuple(roles))
