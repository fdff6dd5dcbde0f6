"""Loading image files into image tables, against the real server (and the bridge in-process)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psycopg2
import pytest
from psycopg2 import sql

from gpdl_backend import datasets
from gpdl_backend.errors import FatalError, GpdlError, UsageError
from gpdl_backend.images.loader import STAGING_PREFIX, load_images
from gpdl_backend.server import bridge
from tests.imagefiles import (
    fresh_table,
    pillow_decode,
    random_pixels,
    save,
    table_images,
    user_tables,
    write_class_tree,
)

COUNTS = {"bird": 3, "cat": 5, "dog": 4}
TOTAL = sum(COUNTS.values())


@pytest.fixture(scope="module")
def tree(shared_tmp_factory: Callable[[str], Path]) -> tuple[Path, dict[str, np.ndarray]]:
    """12 RGB PNGs of 6x8 in three class folders, and the pixels written."""
    root = shared_tmp_factory("gpdl-load-tree-") / "train"
    return root, write_class_tree(root, COUNTS)


@pytest.fixture(scope="module")
def synthetic(shared_tmp_factory: Callable[[str], Path]) -> Path:
    """2,000 synthetic 32x32 PNGs: enough work to interrupt a load half-way."""
    root = shared_tmp_factory("gpdl-load-synth-") / "synthetic"
    datasets.write_synthetic_images(root, 2000, num_classes=4, processes=2)
    return root


@pytest.fixture
def table(conn) -> Iterator[str]:
    """A fresh table name, dropped (with its _errors) afterwards."""
    yield from fresh_table(conn, "load")


def staging_tables(conn) -> set[str]:
    return {t for t in user_tables(conn) if t.split(".")[1].startswith(STAGING_PREFIX)}


def count_rows(conn, table: str) -> int:
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        n = cur.fetchone()[0]
    conn.commit()
    return n


def error_rows(conn, table: str) -> dict[str, str]:
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT path, reason FROM {}").format(
            sql.Identifier(f"{table}_errors")))
        rows = dict(cur.fetchall())
    conn.commit()
    return rows


# --- what a load stores ---------------------------------------------------------
@pytest.mark.db
def test_load_counts_labels_dims_and_pixels(dsn, conn, tree, table) -> None:
    root, written = tree
    result = load_images(dsn, str(root), table, batch_size=5)
    assert (result.images, result.files, result.errors) == (TOTAL, TOTAL, 0)
    assert result.rows == 3  # fragments of 5, 5 and 2 files
    assert result.table == table and result.images_per_second > 0
    images = table_images(conn, table)
    assert set(images) == set(written)
    for path, (name, label, pixels) in images.items():
        assert name == Path(path).name
        assert label == Path(path).parent.name
        assert pixels.shape == (6, 8, 3)
        np.testing.assert_array_equal(pixels, written[path])
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT dims, cardinality(names), pixels IS NULL FROM {} "
                            "ORDER BY fullpaths[1]").format(sql.Identifier(table)))
        rows = cur.fetchall()
    assert sorted(r[0][0] for r in rows) == [2, 5, 5]
    assert all(r[0][1:] == [6, 8, 3] and r[1] == r[0][0] and r[2] for r in rows)
    assert error_rows(conn, table) == {}
    assert staging_tables(conn) == set()


@pytest.mark.db
def test_chosen_file_bytes_match_its_decoded_pixels(dsn, conn, tree, table) -> None:
    root, _ = tree
    load_images(dsn, str(root), table, batch_size=4)
    chosen = str(root / "cat" / "img_003.png")
    with conn.cursor() as cur:
        cur.execute(sql.SQL(
            "SELECT x, dims, array_position(fullpaths, %s) FROM {} WHERE %s = ANY(fullpaths)"
        ).format(sql.Identifier(table)), (chosen, chosen))
        x, dims, position = cur.fetchone()
    per_image = int(np.prod(dims[1:]))
    start = (position - 1) * per_image
    assert bytes(x)[start:start + per_image] == pillow_decode(chosen).tobytes()


@pytest.mark.db
def test_file_url_location(dsn, conn, tree, table) -> None:
    root, _ = tree
    result = load_images(dsn, f"file://{root}", table, batch_size=100)
    assert result.images == TOTAL and result.rows == 1
    assert {label for _, label, _ in table_images(conn, table).values()} == set(COUNTS)


@pytest.mark.db
def test_resize(dsn, conn, tree, table) -> None:
    root, _ = tree
    result = load_images(dsn, str(root), table, resize=(4, 5))
    assert result.images == TOTAL
    for path, (_, _, pixels) in table_images(conn, table).items():
        np.testing.assert_array_equal(pixels, pillow_decode(path, size=(4, 5)))


@pytest.mark.db
def test_color_mode_l(dsn, conn, tree, table) -> None:
    root, _ = tree
    load_images(dsn, str(root), table, color_mode="L")
    for path, (_, _, pixels) in table_images(conn, table).items():
        assert pixels.shape == (6, 8, 1)
        np.testing.assert_array_equal(pixels, pillow_decode(path, "L"))


@pytest.mark.db
def test_jpeg_files(dsn, conn, shared_tmp, table) -> None:
    written = write_class_tree(shared_tmp / "jpegs", {"a": 2, "b": 2}, size=(16, 12),
                               image_format="JPEG")
    load_images(dsn, str(shared_tmp / "jpegs"), table)
    images = table_images(conn, table)
    assert set(images) == set(written)
    for path, (_, _, pixels) in images.items():
        np.testing.assert_array_equal(pixels, pillow_decode(path))


@pytest.mark.db
def test_int_pixels_match_x(dsn, conn, tree, table) -> None:
    root, _ = tree
    load_images(dsn, str(root), table, int_pixels=True, batch_size=5)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT x, pixels FROM {}").format(sql.Identifier(table)))
        rows = cur.fetchall()
    assert len(rows) == 3
    for x, pixels in rows:
        assert pixels == list(bytes(x))


@pytest.mark.db
def test_grayscale_sources_load_as_rgb(dsn, conn, shared_tmp, table) -> None:
    written = write_class_tree(shared_tmp / "gray", {"g": 3}, mode="L")
    load_images(dsn, str(shared_tmp / "gray"), table)
    for path, (_, _, pixels) in table_images(conn, table).items():
        assert pixels.shape == (6, 8, 3)
        np.testing.assert_array_equal(pixels[..., 0], written[path])


# --- locations ------------------------------------------------------------------
@pytest.mark.db
def test_glob_locations(dsn, conn, tree, table) -> None:
    root, _ = tree
    result = load_images(dsn, f"{root}/cat/*.png", table)
    assert result.images == COUNTS["cat"]
    assert {label for _, label, _ in table_images(conn, table).values()} == {"cat"}
    result = load_images(dsn, f"{root}/*/img_00[01].png", table, if_exists="replace")
    assert result.images == 2 * len(COUNTS)
    result = load_images(dsn, f"{root}/**/*.png", table, if_exists="replace")
    assert result.images == TOTAL


@pytest.mark.db
def test_schema_qualified_table(dsn, conn, tree) -> None:
    root, _ = tree
    with conn.cursor() as cur:
        cur.execute("CREATE SCHEMA IF NOT EXISTS load_schema")
    conn.commit()
    try:
        result = load_images(dsn, str(root), "load_schema.images")
        assert result.table == "load_schema.images"
        assert len(table_images(conn, "load_schema.images")) == TOTAL
        assert {"load_schema.images", "load_schema.images_errors"} <= user_tables(conn)
    finally:
        with conn.cursor() as cur:
            cur.execute("DROP SCHEMA load_schema CASCADE")
        conn.commit()


# --- bad input ------------------------------------------------------------------
@pytest.mark.db
def test_mixed_sizes_in_one_segment_are_refused(dsn, conn, shared_tmp, table) -> None:
    root = shared_tmp / "mixed"
    write_class_tree(root, {"a": 3})
    save(root / "b" / "odd.png", random_pixels(1, 9, 9))
    before = user_tables(conn)
    with pytest.raises(UsageError, match=r"mixed image sizes: .*odd\.png is 9x9x3") as info:
        load_images(dsn, str(root), table, batch_size=100)  # one fragment: one segment
    assert "resize" in str(info.value)
    assert user_tables(conn) == before


@pytest.mark.db
def test_mixed_sizes_across_segments_are_refused(dsn, conn, shared_tmp, table) -> None:
    root = shared_tmp / "mixed"
    save(root / "a" / "big.png", random_pixels(1, 9, 9))
    save(root / "a" / "small.png", random_pixels(2, 6, 8))
    before = user_tables(conn)
    with pytest.raises(UsageError, match=r"mixed image sizes: .*(big|small)\.png"):
        load_images(dsn, str(root), table, batch_size=1)  # one file per segment
    assert user_tables(conn) == before
    result = load_images(dsn, str(root), table, batch_size=1, resize=(5, 5))
    assert result.images == 2


@pytest.mark.db
def test_corrupt_and_non_image_files_are_recorded_and_skipped(dsn, conn, tree, shared_tmp,
                                                              table) -> None:
    root = shared_tmp / "bad"
    written = write_class_tree(root, {"cat": 4})
    good = Path(next(iter(written)))
    (root / "cat" / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20)
    (root / "cat" / "notes.txt").write_text("not an image\n")
    (root / "cat" / "truncated.png").write_bytes(good.read_bytes()[:60])
    (root / "cat" / "empty.png").write_bytes(b"")
    result = load_images(dsn, str(root), table, batch_size=3)
    assert (result.images, result.errors, result.files) == (4, 4, 8)
    assert set(table_images(conn, table)) == set(written)
    errors = error_rows(conn, table)
    assert set(errors) == {str(root / "cat" / n) for n in
                           ("garbage.png", "notes.txt", "truncated.png", "empty.png")}
    assert errors[str(root / "cat" / "notes.txt")].startswith("not an image")
    assert all(reason for reason in errors.values())


@pytest.mark.db
def test_only_bad_files_are_refused_and_nothing_is_made(dsn, conn, shared_tmp, table) -> None:
    (shared_tmp / "x").mkdir()
    (shared_tmp / "x" / "a.txt").write_text("hello")
    before = user_tables(conn)
    with pytest.raises(UsageError, match=r"no image could be read at .*: all 1 files failed "
                                         r"\(e\.g\. .*a\.txt: not an image"):
        load_images(dsn, str(shared_tmp), table)
    assert user_tables(conn) == before and not staging_tables(conn)


@pytest.mark.db
def test_an_unreadable_subdirectory_is_recorded_and_the_rest_loads(dsn, conn, shared_tmp,
                                                                   table) -> None:
    root = shared_tmp / "partly"
    written = write_class_tree(root, {"cat": 3, "dog": 2})
    (root / "dog").chmod(0)  # the server's OS user may not list it
    try:
        result = load_images(dsn, str(root), table)
    finally:
        (root / "dog").chmod(0o755)
    assert (result.images, result.errors) == (3, 1)
    assert set(table_images(conn, table)) == {p for p in written if "/cat/" in p}
    assert error_rows(conn, table) == {str(root / "dog"): "cannot list directory: "
                                                          "Permission denied"}


@pytest.mark.db
def test_an_unreadable_location_names_the_servers_user_not_credentials(
        dsn, conn, shared_tmp, table) -> None:
    root = shared_tmp / "closed"
    write_class_tree(root, {"cat": 1})
    root.chmod(0)
    try:
        with pytest.raises(UsageError, match=f"permission denied listing {root}: the "
                                             "database server's OS user may not read it"):
            load_images(dsn, str(root), table)
    finally:
        root.chmod(0o755)


@pytest.mark.db
def test_missing_location(dsn, conn, shared_tmp, table) -> None:
    before = user_tables(conn)
    with pytest.raises(UsageError, match="does not exist"):
        load_images(dsn, str(shared_tmp / "nowhere"), table)
    with pytest.raises(UsageError, match="does not exist"):
        load_images(dsn, f"{shared_tmp}/nowhere/*.png", table)
    assert user_tables(conn) == before


@pytest.mark.db
def test_empty_location(dsn, conn, shared_tmp, table) -> None:
    (shared_tmp / "empty" / "cat").mkdir(parents=True)
    (shared_tmp / "empty" / ".hidden.png").write_bytes(b"x")
    before = user_tables(conn)
    with pytest.raises(UsageError, match="no files found"):
        load_images(dsn, str(shared_tmp / "empty"), table)
    with pytest.raises(UsageError, match="no files found"):
        load_images(dsn, f"{shared_tmp}/empty/*.jpg", table)
    assert user_tables(conn) == before


@pytest.mark.db
@pytest.mark.parametrize("name", ["bad-name", "x; DROP TABLE y", 'a"b', "", "a.b.c", "1abc",
                                  "a" * 60])
def test_unsafe_table_names_are_refused_first(dsn, conn, tree, name) -> None:
    root, _ = tree
    before = user_tables(conn)
    with pytest.raises(UsageError, match="table name"):
        load_images(dsn, str(root), name)
    assert user_tables(conn) == before


@pytest.mark.db
@pytest.mark.parametrize(("option", "message"), [
    ({"batch_size": 0}, "batch_size"), ({"batch_size": "5"}, "batch_size"),
    ({"color_mode": "CMYK"}, "color_mode"), ({"if_exists": "merge"}, "if_exists"),
    ({"resize": (0, 4)}, "resize"), ({"resize": (4,)}, "resize"), ({"threads": 0}, "threads"),
    ({"server": "../etc/passwd"}, "server name"), ({"server": "nosuchserver"}, "not configured"),
])
def test_bad_options_are_refused_first(dsn, conn, tree, table, option, message) -> None:
    root, _ = tree
    before = user_tables(conn)
    with pytest.raises(UsageError, match=message):
        load_images(dsn, str(root), table, **option)
    assert user_tables(conn) == before


@pytest.mark.db
def test_existing_table_fail_replace_append(dsn, conn, tree, shared_tmp, table) -> None:
    root, _ = tree
    load_images(dsn, str(root), table)
    with pytest.raises(UsageError, match="already exists"):
        load_images(dsn, str(root), table)
    assert count_rows(conn, f"{table}_errors") == 0

    other = shared_tmp / "other"
    write_class_tree(other, {"fox": 2}, seed=7)
    (other / "fox" / "junk.png").write_bytes(b"junk")
    result = load_images(dsn, str(other), table, if_exists="replace")
    assert result.images == 2
    assert {label for _, label, _ in table_images(conn, table).values()} == {"fox"}
    assert len(error_rows(conn, table)) == 1

    result = load_images(dsn, str(root), table, if_exists="append")
    assert result.images == TOTAL
    assert len(table_images(conn, table)) == TOTAL + 2
    assert len(error_rows(conn, table)) == 1
    load_images(dsn, str(other), table, if_exists="append")
    assert count_rows(conn, f"{table}_errors") == 2  # the same file failed twice
    assert staging_tables(conn) == set()


@pytest.mark.db
def test_an_existing_errors_table_is_not_overwritten(dsn, conn, tree, table) -> None:
    root, _ = tree
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE TABLE {} (keep int)").format(
            sql.Identifier(f"{table}_errors")))
    conn.commit()
    with pytest.raises(UsageError, match=f"{table}_errors already exists"):
        load_images(dsn, str(root), table)


@pytest.mark.db
def test_append_of_another_size_is_refused(dsn, conn, tree, shared_tmp, table) -> None:
    root, _ = tree
    load_images(dsn, str(root), table)
    write_class_tree(shared_tmp / "big", {"cat": 2}, size=(10, 10))
    with pytest.raises(UsageError, match="mixed image sizes"):
        load_images(dsn, str(shared_tmp / "big"), table, if_exists="append")
    assert len(table_images(conn, table)) == TOTAL
    load_images(dsn, str(shared_tmp / "big"), table, if_exists="append", resize=(6, 8))
    assert len(table_images(conn, table)) == TOTAL + 2


# --- progress and interruption --------------------------------------------------
@pytest.mark.db
def test_progress_reaches_the_file_total(dsn, synthetic, table) -> None:
    calls: list[tuple[int, int, int]] = []
    result = load_images(dsn, str(synthetic), table, batch_size=7,
                         progress=lambda *args: calls.append(args))
    assert result.images == 2000
    assert len(calls) == -(-2000 // 7)  # one per fragment, none lost
    assert calls[-1] == (2000, 2000, 0)
    done = [c[0] for c in calls]
    assert done == sorted(done) and all(c[1] == 2000 for c in calls)


class Stop(Exception):
    """Raised by a progress callback to interrupt a load."""


@pytest.mark.db
def test_a_failing_progress_callback_interrupts_the_load(dsn, conn, synthetic, table) -> None:
    def progress(done: int, total: int, errors: int) -> None:
        raise Stop(f"stopped at {done}")

    before = user_tables(conn)
    with pytest.raises(Stop):
        load_images(dsn, str(synthetic), table, batch_size=20, progress=progress)
    assert user_tables(conn) == before
    assert_no_loader_left(conn)


@pytest.mark.db
def test_a_terminated_segment_leaves_no_table(dsn, conn, synthetic, table) -> None:
    killed: list[int] = []

    def progress(done: int, total: int, errors: int) -> None:
        if killed:
            return
        with psycopg2.connect(dsn) as killer, killer.cursor() as cur:
            cur.execute("SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE query LIKE '%%gpdl.read_images(%%' AND pid <> pg_backend_pid()")
            killed.extend(pid for pid, _ in cur.fetchall())
        killer.close()

    before = user_tables(conn)
    with pytest.raises(FatalError, match="terminat"):
        load_images(dsn, str(synthetic), table, batch_size=20, progress=progress)
    assert killed
    assert user_tables(conn) == before
    assert_no_loader_left(conn)


def assert_no_loader_left(conn) -> None:
    """No backend still runs a read_images call (cancelled ones have stopped)."""
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                    "AND query LIKE '%%gpdl.read_images(%%' AND pid <> pg_backend_pid()")
        assert cur.fetchone()[0] == 0
    conn.commit()


# --- the SQL form ---------------------------------------------------------------
@pytest.mark.db
def test_sql_create_table_as_read_images(conn, tree, table) -> None:
    root, written = tree
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE TABLE {} AS SELECT * FROM gpdl.read_images(%s, "
                            "batch_size => 5)").format(sql.Identifier(table)), (str(root),))
        cur.execute(sql.SQL("SELECT sum(dims[1]), count(*) FROM {}").format(
            sql.Identifier(table)))
        assert cur.fetchone() == (TOTAL, 3)
    conn.commit()
    assert set(table_images(conn, table)) == set(written)


@pytest.mark.db
def test_sql_errors_are_gpdl_errors(conn, shared_tmp) -> None:
    with conn.cursor() as cur, pytest.raises(psycopg2.Error) as info:
        cur.execute("SELECT * FROM gpdl.read_images(%s)", (str(shared_tmp / "nowhere"),))
    conn.rollback()
    from gpdl_backend.client import server_error

    mapped = server_error(info.value)
    assert isinstance(mapped, UsageError) and "does not exist" in str(mapped)


# --- the bridge in-process: row splitting under the field limit -------------------
def test_rows_are_split_under_the_field_limit(tree, monkeypatch) -> None:
    root, written = tree
    notices: list[str] = []

    class Plpy:
        @staticmethod
        def notice(message: str) -> None:
            notices.append(message)

    per_image = 6 * 8 * 3
    monkeypatch.setattr(bridge, "MAX_FIELD_BYTES", 2 * per_image)
    rows = list(bridge.read_images(Plpy, None, str(root), batch_size=5))
    image_rows = [r for r in rows if r[0]]
    assert sum(len(r[0]) for r in image_rows) == TOTAL
    assert all(len(r[4]) <= 2 * per_image and r[3][0] <= 2 for r in image_rows)
    assert [r[3][0] for r in image_rows] == [2, 2, 1, 2, 2, 1, 2]
    assert {p for r in image_rows for p in r[0]} == set(written)
    assert len(notices) == 1 and "splitting into rows of 2" in notices[0]


def test_int_pixels_count_four_bytes_a_value(tree, monkeypatch) -> None:
    root, _ = tree
    per_image = 6 * 8 * 3
    monkeypatch.setattr(bridge, "MAX_FIELD_BYTES", 4 * 2 * per_image)
    rows = [r for r in bridge.read_images(None, None, str(root), batch_size=5, int_pixels=True)
            if r[0]]
    assert max(r[3][0] for r in rows) == 2
    assert all(r[5] == list(r[4]) for r in rows)


def test_failures_travel_with_the_fragment_s_last_row(shared_tmp, monkeypatch) -> None:
    written = write_class_tree(shared_tmp / "t", {"a": 4})
    (shared_tmp / "t" / "a" / "img_001x.png").write_bytes(b"nope")
    monkeypatch.setattr(bridge, "MAX_FIELD_BYTES", 2 * 6 * 8 * 3)
    rows = list(bridge.read_images(None, None, str(shared_tmp / "t"), batch_size=5))
    assert [len(r[0]) for r in rows] == [2, 2]
    assert rows[0][6] == [] and rows[1][6] == [str(shared_tmp / "t" / "a" / "img_001x.png")]
    assert sum(len(r[0]) for r in rows) == len(written)


def test_segments_share_fragments_without_overlap(tree) -> None:
    root, written = tree
    seen: list[str] = []
    for segment in range(3):
        for row in bridge.read_images(None, None, str(root), batch_size=2, segment=segment,
                                      num_segments=3):
            seen.extend(row[0])
    assert sorted(seen) == sorted(written)


def test_bridge_refuses_bad_arguments(tree) -> None:
    root, _ = tree
    for kwargs, message in [({"batch_size": 0}, "batch_size"), ({"color_mode": "P"}, "color"),
                            ({"resize": [3]}, "resize"), ({"segment": 1}, "together")]:
        with pytest.raises(GpdlError, match=message):
            list(bridge.read_images(None, None, str(root), **kwargs))
    with pytest.raises(UsageError, match="no files found"):
        bridge.count_files(None, None, str(root / "cat" / "*.jpg"))
    assert bridge.count_files(None, None, str(root)) == TOTAL


@pytest.mark.db
def test_a_target_gpdl_may_not_write_is_refused_in_one_line(dsn, conn, shared_tmp,
                                                            table) -> None:
    """No such schema, a system table, a view, appending to a non-image table."""
    root = shared_tmp / "target_checks"
    write_class_tree(root, {"cat": 2})
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE TABLE {} (a integer)").format(sql.Identifier(table)))
        cur.execute(sql.SQL("CREATE VIEW {} AS SELECT 1 AS a").format(
            sql.Identifier(f"{table}_view")))
    conn.commit()
    before = user_tables(conn)
    try:
        refusals = {
            "nosuch_schema_x.images": ("fail", "schema nosuch_schema_x does not exist"),
            "pg_catalog.pg_class": ("replace", "is in the system schema pg_catalog"),
            "pg_class": ("replace", "is in the system schema pg_catalog"),
            "information_schema.tables": ("replace", "system schema information_schema"),
            f"{table}_view": ("replace", "is a view, not a table"),
            table: ("append", f"table {table} is not an image table"),
        }
        for target, (if_exists, message) in refusals.items():
            with pytest.raises(UsageError, match=message) as info:
                load_images(dsn, str(root), target, if_exists=if_exists)
            assert "\n" not in str(info.value) and "Traceback" not in str(info.value)
        assert user_tables(conn) == before and not staging_tables(conn)
    finally:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(
                sql.Identifier(f"{table}_view")))
        conn.commit()
