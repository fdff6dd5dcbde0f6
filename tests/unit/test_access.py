"""Who may read a location: server config files and the rules (``server.access``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gpdl_backend.errors import UsageError
from gpdl_backend.server.access import (
    Caller,
    ServerConfig,
    check_location,
    load_server_config,
    parse_server_config,
)
from gpdl_backend.servers import add_server, describe_server

ALICE = Caller("alice", superuser=False, reads_server_files=False,
               config_roles=frozenset({"analysts"}))
STRANGER = Caller("bob", superuser=False, reads_server_files=False)
FILES = Caller("carol", superuser=False, reads_server_files=True)
ADMIN = Caller("postgres", superuser=True, reads_server_files=True)
IMAGES = ServerConfig("images", "s3://bucket/images", ("analysts",))


# --- config files --------------------------------------------------------------------
def test_a_written_config_reads_back_with_its_roles_and_base_path(tmp_path: Path) -> None:
    options = {"key": "k", "secret": "s", "client_kwargs": {"endpoint_url": "http://h:9"}}
    path = add_server(tmp_path, "minio", options, base_path="s3://bucket/images",
                      roles=("analysts", "analysts", "ops"))
    assert os.stat(path).st_mode & 0o777 == 0o600
    config = load_server_config(str(tmp_path), "minio")
    assert config == ServerConfig("minio", "s3://bucket/images", ("analysts", "ops"), options)
    line = describe_server(tmp_path, "minio")
    assert "s3://bucket/images" in line and "analysts, ops" in line and "s\"" not in line
    assert "secret" not in line


def test_a_flat_config_from_before_roles_opens_to_superusers_only(tmp_path: Path) -> None:
    (tmp_path / "old.json").write_text(json.dumps({"anon": True}))
    config = load_server_config(str(tmp_path), "old")
    assert config == ServerConfig("old", None, (), {"anon": True})
    with pytest.raises(UsageError, match=r"does not allow role bob \(it allows: superusers only"):
        check_location("s3://b/x", config, STRANGER)


@pytest.mark.parametrize("name", ["../minio", "a/b", "", ".hidden", "-x", "x y", "x\n"])
def test_server_name_cannot_escape_the_directory(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match="invalid"):
        load_server_config(str(tmp_path), name)


def test_missing_server_names_server_and_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="minio") as caught:
        load_server_config(str(tmp_path), "minio")
    assert str(tmp_path) in str(caught.value)


@pytest.mark.parametrize("content", ['{"secret": "hunter2",', '["hunter2"]',
                                     '{"storage_options": "hunter2"}',
                                     '{"storage_options": {}, "roles": "hunter2"}',
                                     '{"storage_options": {}, "hunter2": 1}'])
def test_bad_server_file_never_shows_its_contents(tmp_path: Path, content: str) -> None:
    (tmp_path / "bad.json").write_text(content)
    with pytest.raises(UsageError, match="bad") as caught:
        load_server_config(str(tmp_path), "bad")
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    if "hunter2\":" not in content:  # an unknown key is named: it is not a secret
        assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("kwargs, message", [({"base_path": ""}, "base-path"),
                                             ({"roles": ("",)}, "role")])
def test_empty_base_path_or_role_is_refused_and_nothing_written(
        tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        add_server(tmp_path / "servers", "x", {}, **kwargs)
    assert not (tmp_path / "servers").exists()


def test_parse_refuses_a_non_object() -> None:
    with pytest.raises(UsageError, match="JSON object"):
        parse_server_config("x", [])


# --- the rules -----------------------------------------------------------------------
@pytest.mark.parametrize("location", ["/etc/passwd", "s3://anything/x", "https://10.0.0.1/",
                                      "file:///root"])
def test_a_superuser_reads_anywhere_with_or_without_a_config(location: str) -> None:
    check_location(location, None, ADMIN)
    check_location(location, ServerConfig("x"), ADMIN)


@pytest.mark.parametrize("location", ["s3://bucket/images", "s3://bucket/images/train",
                                      "s3a://bucket/images/train/cat/1.png",
                                      "s3://bucket/images/train/*.png"])
def test_a_config_role_reads_under_the_base_path(location: str) -> None:
    check_location(location, IMAGES, ALICE)


@pytest.mark.parametrize("location", ["s3://bucket/imagesx", "s3://bucket/other",
                                      "s3://bucket/images/../secrets",
                                      "s3://bucket/images/%2E%2E/secrets",
                                      "gcs://bucket/images/x", "/bucket/images"])
def test_a_location_outside_the_base_path_is_refused(location: str) -> None:
    with pytest.raises(UsageError, match="outside server config 'images'"):
        check_location(location, IMAGES, ALICE)


def test_http_and_https_are_different_places() -> None:
    config = ServerConfig("web", "https://data.example.com/sets", ("analysts",))
    check_location("https://data.example.com/sets/fashion.png", config, ALICE)
    for location in ("http://data.example.com/sets/x.png",
                     "https://data.example.com@10.0.0.1/sets/x.png",
                     "https://data.example.com.evil.net/sets/x.png",
                     "https://data.example.com/sets/../admin"):
        with pytest.raises(UsageError, match="outside"):
            check_location(location, config, ALICE)


def test_a_role_outside_the_config_is_refused_naming_who_may() -> None:
    with pytest.raises(UsageError, match=r"'images' does not allow role bob \(it allows: "
                                         r"analysts\)"):
        check_location("s3://bucket/images/x", IMAGES, STRANGER)


def test_a_config_without_base_path_opens_nothing_to_a_role() -> None:
    with pytest.raises(UsageError, match="no base path"):
        check_location("s3://bucket/x", ServerConfig("x", None, ("analysts",)), ALICE)


@pytest.mark.parametrize("location", ["s3://bucket/x", "https://127.0.0.1:9/x",
                                      "http://169.254.169.254/latest/meta-data"])
def test_a_remote_location_without_a_config_is_for_superusers(location: str) -> None:
    for who in (ALICE, FILES):
        with pytest.raises(UsageError, match="only through a server config"):
            check_location(location, None, who)


def test_server_files_without_a_config_follow_copy_s_rule() -> None:
    check_location("/data/images", None, FILES)  # pg_read_server_files, as COPY FROM
    with pytest.raises(UsageError, match="pg_read_server_files"):
        check_location("/data/images", None, ALICE)


def test_local_base_paths_compare_resolved_paths(tmp_path: Path) -> None:
    allowed, other = tmp_path / "allowed", tmp_path / "other"
    allowed.mkdir()
    other.mkdir()
    (allowed / "link").symlink_to(other)
    config = ServerConfig("local", str(allowed), ("analysts",))
    check_location(str(allowed / "train"), config, ALICE)
    check_location(f"file://{allowed}/train/*.png", config, ALICE)
    for location in (str(allowed / "link"), str(allowed / ".." / "other"), str(other),
                     f"{allowed}x"):
        with pytest.raises(UsageError, match="outside"):
            check_location(location, config, ALICE)
