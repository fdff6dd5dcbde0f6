"""Object-store credentials: ``add_server`` (``gpdl servers add`` from Python)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpdl_backend.client import session
from gpdl_backend.errors import UsageError
from gpdl_jupyter.api._common import resolve
from gpdl_jupyter.plans import call_text
from gpdl_jupyter.sqltext import ShownSql, shown

_SERVERS_DIR = "SELECT value FROM gpdl.config WHERE key = 'servers_dir'"


def servers_dir(*, dsn: str | None = None) -> Path:
    """Where the database reads named object-store configs (recorded by ``gpdl install``).

    Raises:
        UsageError: gpdl is not installed in that database.
    """
    with session(resolve(dsn, False)) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('gpdl.config') IS NOT NULL")
        if not cur.fetchone()[0]:
            raise UsageError("gpdl is not installed in this database: run gpdl install")
        cur.execute(_SERVERS_DIR)
        row = cur.fetchone()
    if row is None:
        raise UsageError("this database records no servers_dir: run gpdl install again")
    return Path(row[0])


def add_server(
    name: str,
    *,
    endpoint_url: str | None = None,
    key: str | None = None,
    secret: str | None = None,
    region: str | None = None,
    options: dict[str, Any] | None = None,
    dsn: str | None = None,
    show_sql: bool = False,
) -> Path | ShownSql:
    """Write a named object-store config where the database reads it (PXF's ``SERVER=``).

    ``%gpdl load s3://bucket/path TABLE --server NAME`` then reads with these
    credentials; SQL only ever names the config. The file is written on this
    machine, in the ``servers_dir`` that ``gpdl install`` recorded in the
    database: use it where the database runs here (the embedded server, a
    local PostgreSQL); for a cluster, put the file on every host
    (``gpdl servers add`` there).

    Args:
        name: the config's name (letters, digits, ``_``, ``.``, ``-``).
        endpoint_url: an S3-compatible server's URL (MinIO, moto...). Defaults
            to None (AWS S3).
        key: access key id. Defaults to None.
        secret: secret access key. Defaults to None.
        region: the region name. Defaults to None.
        options: more fsspec storage options, merged last. Defaults to None.
        dsn: the database. Defaults to None (the usual resolution order).
        show_sql: return what would run instead of running it. Defaults to False.

    Returns:
        The config file's path.

    Raises:
        UsageError: an unsafe name, or gpdl not installed in the database.

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
        return shown([f"{_SERVERS_DIR};",
                      call_text("gpdl_backend.servers.add_server", url, "<servers_dir>", name,
                                "<options: credentials not shown>"),
                      f"-- writes <servers_dir>/{name}.json (mode 0600) on this machine"])
    return servers.add_server(servers_dir(dsn=dsn), name, config)
