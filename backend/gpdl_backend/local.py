"""Sessions from the database host back into its own database, as the calling role.

gpdl's SQL functions (``gpdl.madlib_keras_fit_multiple_model`` and the rest) run
gpdl's drivers beside the server: a driver needs sessions of its own (one per
segment), and a training job must outlive the statement that started it. Those
sessions connect over the server's Unix socket as the server's bootstrap superuser,
which the server's OS user may do (peer authentication, the default for that user
on PostgreSQL and Greenplum), and take the calling role in the startup packet
(``-c role=<caller>``): every statement a driver sends runs with the caller's
privileges, never the superuser's. Only gpdl's own housekeeping (ending a dead
driver's sessions of the same job) uses the connection without the role.

Runs inside the server's Python (a backend of the coordinator) or in a job's
driver process that such a backend started.
"""

from __future__ import annotations

import os
from typing import Any

from psycopg2.extensions import make_dsn, parse_dsn

__all__ = ["ROLE_OPTION", "local_dsn", "without_role"]

ROLE_OPTION = "-c role="
"""How a local DSN names the role its sessions act as (libpq ``options``)."""


def local_dsn(plpy: Any) -> str:
    """A DSN for new sessions into this backend's database, acting as the current role.

    The port and socket directory come from ``postmaster.pid`` in the data
    directory (a backend's working directory): ``unix_socket_directories`` is
    not readable by an ordinary role. Without a socket, loopback TCP.

    Example:
        >>> local_dsn(plpy)  # inside a plpython3u function
        'host=/var/run/postgresql port=5432 dbname=gpdl user=postgres options=...'
    """
    row = plpy.execute(
        "SELECT current_user AS role, current_database() AS database, "
        "current_setting('search_path') AS search_path, "
        "(SELECT rolname FROM pg_roles WHERE oid = 10) AS superuser")[0]
    with open(os.path.join(os.getcwd(), "postmaster.pid")) as handle:
        lines = handle.read().split("\n")
    port, socket_dir = lines[3].strip(), lines[4].strip()
    host = socket_dir or "127.0.0.1"
    # The role first (without_role looks for it there), then the caller's
    # search path, so that unqualified names mean what they mean to the caller.
    options = (ROLE_OPTION + _escape_option(row["role"])
               + " -c search_path=" + _escape_option(row["search_path"]))
    return make_dsn(host=host, port=port, dbname=row["database"], user=row["superuser"],
                    options=options)


def without_role(dsn: str) -> str:
    """The same DSN without a local DSN's role option (other DSNs come back as they are)."""
    params = parse_dsn(dsn)
    if not params.get("options", "").startswith(ROLE_OPTION):
        return dsn
    del params["options"]
    return make_dsn(**params)


def _escape_option(value: str) -> str:
    # libpq splits options on spaces; a backslash keeps one in the value.
    return value.replace("\\", "\\\\").replace(" ", "\\ ")
