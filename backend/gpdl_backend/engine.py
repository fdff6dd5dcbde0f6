"""The only module that knows PostgreSQL from Greenplum.

Everything else speaks of *segments* and ``__dist_key__``:

- PostgreSQL: N virtual segments (``gpdl.config.num_segments``, by default the
  server's CPU count); segment k holds the rows with ``__dist_key__ = k`` and
  is worked by a dedicated connection.
- Greenplum / Apache Cloudberry: one segment per primary segment; tables are
  ``DISTRIBUTED BY (__dist_key__)`` with one key per segment that hashes onto
  it, so ``WHERE __dist_key__ = k`` is dispatched to segment k alone.

Every SQL text built here is valid on PostgreSQL 12 syntax (Greenplum 7).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from psycopg2 import sql

POSTGRESQL = "postgresql"
GREENPLUM = "greenplum"


@dataclass(frozen=True)
class Engine:
    """What a connection's server is, as far as gpdl cares.

    Args:
        kind: ``"postgresql"`` or ``"greenplum"``.
        version: the server's ``version()`` string.
        dist_keys: one ``__dist_key__`` per segment, in segment order.
    """

    kind: str
    version: str = ""
    dist_keys: tuple[int, ...] = field(default=(0,))

    @property
    def is_greenplum(self) -> bool:
        return self.kind == GREENPLUM

    @property
    def num_segments(self) -> int:
        return len(self.dist_keys)

    @property
    def title(self) -> str:
        """The engine's name as people write it (``"Greenplum"``, ``"PostgreSQL"``)."""
        return "Greenplum" if self.is_greenplum else "PostgreSQL"

    def sessions_note(self, sessions: int, each: str) -> str:
        """How work spread by ``row_shares`` / ``read_images_statements`` runs, in words."""
        if self.is_greenplum:
            return "one statement runs on every segment"
        return f"{sessions} sessions at once, {each}"

    # --- DDL -------------------------------------------------------------
    def distributed_by_key(self) -> sql.Composable:
        """The clause that spreads a table by ``__dist_key__`` (empty on PostgreSQL)."""
        if self.is_greenplum:
            return sql.SQL(" DISTRIBUTED BY (__dist_key__)")
        return sql.SQL("")

    def distributed_randomly(self) -> sql.Composable:
        """The clause for tables with no useful key (image tables, errors)."""
        return sql.SQL(" DISTRIBUTED RANDOMLY") if self.is_greenplum else sql.SQL("")

    def distributed_replicated(self) -> sql.Composable:
        """The clause for small tables every segment reads (config, summaries)."""
        return sql.SQL(" DISTRIBUTED REPLICATED") if self.is_greenplum else sql.SQL("")

    def distributed_by(self, column: str) -> sql.Composable:
        """The clause that spreads a table by ``column`` (its primary key; empty on PostgreSQL).

        Greenplum wants a table's primary key to include its distribution key,
        so a table keyed by ``model_id`` or ``mst_key`` is distributed by it.
        """
        if self.is_greenplum:
            return sql.SQL(" DISTRIBUTED BY ({})").format(sql.Identifier(column))
        return sql.SQL("")

    def index_dist_key(self, table: sql.Identifier) -> sql.Composable | None:
        """An index for fast ``WHERE __dist_key__ = k`` scans (PostgreSQL only)."""
        if self.is_greenplum:
            return None
        return sql.SQL("CREATE INDEX ON {} (__dist_key__)").format(table)

    # --- work on every segment ---------------------------------------------
    def read_images_statements(
        self, staging: sql.Composable, read_args: sql.Composable
    ) -> list[sql.Composable]:
        """The statements that load images, one per concurrent session.

        PostgreSQL gets one statement per virtual segment (each run on its own
        connection); Greenplum one statement that runs on every segment. Each
        inserts ``gpdl.read_images`` rows as they come, error columns included:
        the function is called in a select list (value per call, so rows
        stream through), never in FROM, where PostgreSQL and Greenplum would
        first collect all of a segment's rows in a tuplestore.

        Args:
            staging: the table to fill, with the image columns plus
                ``error_paths`` and ``error_reasons``.
            read_args: ``gpdl.read_images`` arguments except segment and count.
        """
        if self.is_greenplum:
            call = sql.SQL(
                "gpdl.read_images({args}, segment => gp_execution_segment(), "
                "num_segments => {n}) AS r FROM gp_dist_random('gp_id')"
            ).format(args=read_args, n=sql.Literal(self.num_segments))
            return [_insert_rows(staging, call)]
        return [
            _insert_rows(staging, sql.SQL(
                "gpdl.read_images({args}, segment => {k}, num_segments => {n}) AS r"
            ).format(args=read_args, k=sql.Literal(k), n=sql.Literal(self.num_segments)))
            for k in range(self.num_segments)
        ]

    def on_every_segment(self, call: sql.Composable) -> sql.Composable:
        """Run a function call once on every segment host process (doctor)."""
        if self.is_greenplum:
            return sql.SQL(
                "SELECT gp_segment_id AS segment, {} AS value FROM gp_dist_random('gp_id') "
                "ORDER BY 1"
            ).format(call)
        return sql.SQL("SELECT -1 AS segment, {} AS value").format(call)

    def row_shares(self, key: sql.Composable) -> list[sql.Composable]:
        """WHERE conditions that split a table's rows among concurrent sessions.

        PostgreSQL: one condition per virtual segment, by a hash of ``key``
        (rows with a NULL key go to the first share), each run on its own
        connection. Greenplum: one condition that keeps every row, since the
        rows are spread over the segments already and one statement runs on
        all of them.

        Args:
            key: a text expression of the row (e.g. its first image path).
        """
        if self.is_greenplum:
            return [sql.SQL("true")]
        n = sql.Literal(self.num_segments)
        return [
            sql.SQL("abs(hashtext(coalesce({key}, ''))::bigint) % {n} = {k}").format(
                key=key, n=n, k=sql.Literal(k))
            for k in range(self.num_segments)
        ]

    def rows_on_every_host(self, call: sql.Composable) -> sql.Composable:
        """All rows of a set-returning function, run once per segment process.

        Greenplum runs it on every primary segment (hosts holding several
        segments answer several times: callers merge repeated rows) and on the
        coordinator; PostgreSQL runs it once. The call sits in a select list:
        in FROM (even ``LATERAL`` beside ``gp_dist_random``) Greenplum runs a
        function on the coordinator alone, once per segment row.
        """
        if self.is_greenplum:
            return sql.SQL(
                "SELECT (r).* FROM (SELECT {call} AS r FROM gp_dist_random('gp_id')) s "
                "UNION ALL SELECT * FROM {call}"
            ).format(call=call)
        return sql.SQL("SELECT * FROM {}").format(call)

    # --- server processes, segment counts, checks -------------------------
    def session_backends(self, prefix: str = "gpdl:") -> sql.Composable:
        """The query of ``(pid, application_name)`` of every server process of the
        sessions whose ``application_name`` starts with ``prefix``.

        PostgreSQL: each session's backend. Greenplum: the coordinator's
        backend and every segment process of the session (those train; they
        carry no application name, so they are matched by session id).
        Run it on the coordinator: a function on a segment cannot read it.

        Args:
            prefix: the start of the application names. Defaults to ``"gpdl:"``.
        """
        pattern = sql.Literal(prefix.replace("\\", "\\\\").replace("%", "\\%")
                              .replace("_", "\\_") + "%")
        if self.is_greenplum:
            return sql.SQL(
                "SELECT a.pid, s.application_name FROM gp_stat_activity a "
                "JOIN pg_stat_activity s ON s.sess_id = a.sess_id "
                "WHERE s.application_name LIKE {} ORDER BY 2, 1").format(pattern)
        return sql.SQL("SELECT pid, application_name FROM pg_stat_activity "
                       "WHERE application_name LIKE {} ORDER BY 2, 1").format(pattern)

    def segment_count(self, virtual: int) -> int:
        """How many segments this server has: Greenplum's primaries, else ``virtual``.

        Args:
            virtual: PostgreSQL's virtual segment count (the one installed or
                asked for); Greenplum ignores it.
        """
        return self.num_segments if self.is_greenplum else virtual

    def python_checks(self, call: sql.Composable) -> list[sql.Composable]:
        """Statements that run ``call`` in every kind of process running gpdl's Python.

        Each returns ``(segment, value)`` rows, segment -1 for the coordinator
        (PostgreSQL's one server, whose backends are its virtual segments).
        Greenplum's primary segments get a statement of their own (their
        Python may differ: other hosts, another user), so that a failing
        segment does not hide the coordinator's answer.
        """
        coordinator = sql.SQL("SELECT -1 AS segment, {} AS value").format(call)
        if self.is_greenplum:
            return [coordinator, self.on_every_segment(call)]
        return [coordinator]

    def plpython3u_fix(self) -> str:
        """How to get plpython3u where the server lacks it."""
        if self.is_greenplum:
            return ("build Greenplum with --with-python (PYTHON=python3.11) on every host, "
                    "then `CREATE EXTENSION plpython3u` (gpdl install does)")
        major = self.version.split()[1].split(".")[0] if " " in self.version else "<major>"
        return (f"apt-get install postgresql-plpython3-{major} (the server's major version), "
                "then gpdl install")


READ_IMAGES_COLUMNS = ("fullpaths", "names", "y", "dims", "x", "pixels", "error_paths",
                       "error_reasons")
"""The columns ``gpdl.read_images`` returns, in order."""


def _insert_rows(staging: sql.Composable, call: sql.Composable) -> sql.Composable:
    """INSERT every row of a select-list ``read_images`` call (aliased ``r``) into staging.

    The subquery is never pulled up (its select list returns a set), so the
    function runs once per row of its FROM, and the fields are taken apart
    outside it.
    """
    columns = [sql.Identifier(c) for c in READ_IMAGES_COLUMNS]
    return sql.SQL("INSERT INTO {staging} ({columns}) SELECT {fields} FROM (SELECT {call}) s"
                   ).format(staging=staging, columns=sql.SQL(", ").join(columns),
                            fields=sql.SQL(", ").join(sql.SQL("(r).{}").format(c)
                                                      for c in columns),
                            call=call)


def greenplum_dist_keys_sql(candidates: int) -> list[sql.Composable]:
    """Statements whose last query returns one ``__dist_key__`` per segment.

    Candidate keys are hashed onto segments by Greenplum itself; the smallest
    key landing on each segment is kept.
    """
    return [
        sql.SQL("DROP TABLE IF EXISTS pg_temp.gpdl_dist_keys"),
        sql.SQL(
            "CREATE TEMP TABLE gpdl_dist_keys AS "
            "SELECT generate_series(0, {}) AS __dist_key__ DISTRIBUTED BY (__dist_key__)"
        ).format(sql.Literal(candidates - 1)),
        sql.SQL(
            "SELECT gp_segment_id, min(__dist_key__) FROM gpdl_dist_keys "
            "GROUP BY gp_segment_id ORDER BY gp_segment_id"
        ),
    ]


_SEGMENT_SUFFIX = re.compile(r"\s+\(seg-?\d+ (?:slice\d+ )?[^()]*pid=\d+\)\s*$")


def strip_segment_suffix(message: str) -> str:
    """A server message without the ``(seg0 slice1 host:port pid=N)`` Greenplum appends.

    Greenplum adds that suffix to every NOTICE and error a segment raises;
    PostgreSQL messages come back unchanged.

    Example:
        >>> strip_segment_suffix("gpdl-progress 3 0  (seg0 slice1 127.0.0.1:7002 pid=336)")
        'gpdl-progress 3 0'
    """
    return _SEGMENT_SUFFIX.sub("", message.strip())


def kind_of(version: str) -> str:
    """``"greenplum"`` for Greenplum / Cloudberry version strings, else PostgreSQL."""
    lowered = version.lower()
    return GREENPLUM if ("greenplum" in lowered or "cloudberry" in lowered) else POSTGRESQL


def probe(conn: Any, num_segments: int | None = None) -> Engine:
    """Find out what the server behind ``conn`` is and its segment keys.

    Args:
        conn: an open psycopg2 connection.
        num_segments: PostgreSQL only: override the installed virtual
            segment count. Defaults to ``gpdl.config``'s, else 1.
    """
    with conn.cursor() as cur:
        cur.execute("SELECT version()")
        version = cur.fetchone()[0]
        kind = kind_of(version)
        if kind == GREENPLUM:
            cur.execute("SELECT count(*) FROM gp_segment_configuration "
                        "WHERE role = 'p' AND content >= 0")
            segments = cur.fetchone()[0]
            keys: dict[int, int] = {}
            candidates = max(64, segments * 16)
            while len(keys) < segments:
                statements = greenplum_dist_keys_sql(candidates)
                for statement in statements:
                    cur.execute(statement)
                keys = dict(cur.fetchall())
                candidates *= 4
            return Engine(kind, version, tuple(keys[s] for s in sorted(keys)))
        if num_segments is None:
            num_segments = installed_num_segments(cur)
    if not conn.autocommit:
        conn.rollback()  # end the read-only transaction the probe opened
    return Engine(kind, version, tuple(range(num_segments)))


def installed_num_segments(cur: Any) -> int:
    """The virtual segment count recorded by ``gpdl install`` (1 if none)."""
    cur.execute("SELECT to_regclass('gpdl.config') IS NOT NULL")
    if not cur.fetchone()[0]:
        return 1
    cur.execute("SELECT value FROM gpdl.config WHERE key = 'num_segments'")
    row = cur.fetchone()
    return int(row[0]) if row else 1


def threads_per_segment(cur: Any, engine: Engine) -> int:
    """TensorFlow threads per segment: a host's cores shared by its segments, at least 1.

    On Greenplum the busiest host decides (hosts may hold more segments than others).
    """
    if engine.is_greenplum:
        cur.execute(
            "SELECT min(cores / segments) FROM ("
            " SELECT c.hostname, count(*) AS segments, max(i.cores) AS cores"
            " FROM gp_segment_configuration c JOIN ("
            "  SELECT gp_segment_id AS content,"
            "   (gpdl.server_info(false)::json ->> 'cpu_count')::int AS cores"
            "  FROM gp_dist_random('gp_id')) i ON i.content = c.content"
            " WHERE c.role = 'p' AND c.content >= 0 GROUP BY c.hostname) h")
        return max(1, int(cur.fetchone()[0] or 1))
    cur.execute("SELECT (gpdl.server_info(false)::json ->> 'cpu_count')::int")
    return max(1, (cur.fetchone()[0] or 1) // max(1, engine.num_segments))
