"""Which locations an ordinary role may read, through which server configs, on the real server.

A role with ``gpdl_user`` and nothing else reads a location only through a
server config that names it (or a group it belongs to) and whose base path
holds the location; without a config, local files follow COPY's rule
(``pg_read_server_files``) and remote locations are for superusers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gpdl_backend.servers import add_server
from tests.imagefiles import write_class_tree
from tests.integration.plain_sql import refusal, run

pytestmark = pytest.mark.db

READER = "gpdl_location_reader"
GROUP = READER + "_group"


def acting_as(role: str) -> list[str]:
    return [f"SET ROLE {role}", f"SET search_path = {role}"]


def count(dsn: str, location: str, server: str | None = None) -> int:
    return run(dsn, "SELECT gpdl.count_files(%s, %s)", (location, server),
               setup=acting_as(READER))[0][0]


def refused(dsn: str, location: str, server: str | None = None) -> str:
    return refusal(dsn, "SELECT gpdl.count_files(%s, %s)", (location, server),
                   setup=acting_as(READER))


@pytest.fixture(scope="module")
def reader(dsn: str) -> Iterator[str]:
    """An ordinary role: gpdl_user, its own schema, a member of GROUP."""
    for role in (READER, GROUP):
        run(dsn, f"DROP SCHEMA IF EXISTS {role} CASCADE")
        run(dsn, f"DROP ROLE IF EXISTS {role}")
    run(dsn, f"CREATE ROLE {GROUP}")
    run(dsn, f"CREATE ROLE {READER} IN ROLE gpdl_user, {GROUP}")
    run(dsn, f"CREATE SCHEMA {READER}")  # AUTHORIZATION: Greenplum's segments refuse it
    run(dsn, f"GRANT USAGE, CREATE ON SCHEMA {READER} TO {READER}")
    yield READER
    run(dsn, f"DROP SCHEMA {READER} CASCADE")
    run(dsn, f"DROP OWNED BY {READER}")
    for role in (READER, GROUP):
        run(dsn, f"DROP ROLE {role}")


@pytest.fixture(scope="module")
def places(dsn: str, reader: str, servers_dir: Path,
           shared_tmp_factory) -> Iterator[dict[str, Path]]:
    """Images under ``allowed`` (opened to GROUP by config 'loc_images') and ``other``."""
    root = shared_tmp_factory("gpdl-access-")
    allowed, other = root / "allowed", root / "other"
    write_class_tree(allowed / "train", {"cat": 3, "dog": 2})
    write_class_tree(other, {"secret": 2})
    (allowed / "elsewhere").symlink_to(other)
    owner = run(dsn, "SELECT value FROM gpdl.config WHERE key = 'server_user'")[0][0]
    add_server(servers_dir, "loc_images", {}, owner=owner, base_path=str(allowed),
               roles=(GROUP,))
    add_server(servers_dir, "loc_theirs", {}, owner=owner, base_path=str(root),
               roles=("gpdl_user_nobody",))
    add_server(servers_dir, "loc_web", {}, owner=owner, base_path="http://127.0.0.1:9/sets",
               roles=(GROUP,))
    yield {"allowed": allowed, "other": other}
    for name in ("loc_images", "loc_theirs", "loc_web"):
        (servers_dir / f"{name}.json").unlink()


def test_a_config_naming_the_role_s_group_opens_its_base_path(dsn: str, places) -> None:
    assert count(dsn, str(places["allowed"] / "train"), "loc_images") == 5
    assert count(dsn, f"file://{places['allowed']}/train/cat/*.png", "loc_images") == 3


@pytest.mark.parametrize("where", ["other", "allowed/../other", "allowed/elsewhere"])
def test_outside_the_base_path_is_refused_even_through_a_link(
        dsn: str, places, where: str) -> None:
    location = str(places["allowed"].parent / where)
    message = refused(dsn, location, "loc_images")
    assert message.endswith(f"location {location} is outside server config 'loc_images''s "
                            f"base path {places['allowed']}")


def test_a_config_for_other_roles_is_refused(dsn: str, places) -> None:
    message = refused(dsn, str(places["allowed"]), "loc_theirs")
    assert f"does not allow role {READER} (it allows: gpdl_user_nobody)" in message


def test_without_a_config_server_files_follow_copy_s_rule(dsn: str, places) -> None:
    missing = str(places["other"] / "no_such_dir")
    for location in (str(places["other"]), missing, "/etc"):  # existing or not: one answer
        assert "may not read files on the database server" in refused(dsn, location)
    run(dsn, f"GRANT pg_read_server_files TO {READER}")
    try:
        assert count(dsn, str(places["other"])) == 2
    finally:
        run(dsn, f"REVOKE pg_read_server_files FROM {READER}")


@pytest.mark.parametrize("location", ["http://127.0.0.1:9/admin", "s3://bucket/x",
                                      "http://127.0.0.1:9/sets/../admin"])
def test_remote_locations_only_through_a_config_that_holds_them(
        dsn: str, places, location: str) -> None:
    assert "only through a server config" in refused(dsn, location)
    assert "outside server config 'loc_web'" in refused(dsn, location, "loc_web")


def test_a_refused_load_makes_no_table_and_an_allowed_one_loads(dsn: str, places) -> None:
    table = f"{READER}.through_config"
    message = refusal(dsn, "SELECT gpdl.load_images(%s, %s, server => 'loc_theirs')",
                      (str(places["allowed"]), table), setup=acting_as(READER))
    assert "does not allow role" in message
    assert run(dsn, "SELECT count(*) FROM pg_tables WHERE schemaname = %s", (READER,)) == [(0,)]
    run(dsn, "SELECT gpdl.load_images(%s, %s, server => 'loc_images')",
        (str(places["allowed"] / "train"), table), setup=acting_as(READER))
    rows = run(dsn, f"SELECT sum(cardinality(fullpaths)), min(tableowner) FROM {table}, "
                    "pg_tables WHERE schemaname = %s AND tablename = 'through_config'",
               (READER,))
    assert rows == [(5, READER)]


def test_a_superuser_needs_no_config(dsn: str, places) -> None:
    assert run(dsn, "SELECT gpdl.count_files(%s)", (str(places["other"]),)) == [(2,)]
