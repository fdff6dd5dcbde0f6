"""The names a data scientist gave the models of a job (``--name cnn-8``), for labels."""

from __future__ import annotations

from psycopg2 import sql

from gpdl_backend.client import session, table_exists, table_name
from gpdl_backend.errors import UsageError
from gpdl_backend.mop.tables import OutputTables


def model_names(dsn: str, output: str) -> dict[int, str]:
    """``model_id → name`` of the architectures job ``output`` trained.

    Read from ``<output>_summary.model_arch_table``. Labels only: a job
    without that table, or models without names, give an empty or partial
    mapping (the labels then say ``model 3``), never an error.

    Raises:
        FatalError: the database cannot be reached.
    """
    out = OutputTables(table_name(output))
    with (session(dsn, "gpdl:names", readonly=True, autocommit=True) as conn,
          conn.cursor() as cur):
        if not table_exists(cur, out.summary):
            return {}
        cur.execute(sql.SQL("SELECT model_arch_table FROM {}").format(out.summary.identifier))
        row = cur.fetchone()
        try:
            arch = table_name(row[0]) if row and row[0] else None
        except UsageError:  # a name gpdl would not write; no labels rather than no chart
            arch = None
        if arch is None or not table_exists(cur, arch):
            return {}
        cur.execute(sql.SQL("SELECT model_id, name FROM {} WHERE coalesce(name, '') <> ''")
                    .format(arch.identifier))
        return {int(model_id): str(name) for model_id, name in cur.fetchall()}
