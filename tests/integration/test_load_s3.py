"""Loading from an S3 bucket: moto's S3 server on 127.0.0.1, credentials in a server config.

moto accepts any credentials until its IAM checks are switched on, so the
fixture creates the bucket, an IAM user with an access key and an S3 policy,
then switches authentication on (``/moto-api/reset-auth``): from then on only
that key works, and a wrong one is refused as by real S3.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psycopg2
import pytest
from psycopg2 import sql

from gpdl_backend.embedded import free_port
from gpdl_backend.errors import UsageError
from gpdl_backend.images.loader import load_images
from gpdl_backend.servers import add_server
from gpdl_jupyter import api
from tests.imagefiles import fresh_table, table_images, user_tables, write_class_tree
from tests.local_servers import wait_until_answering

pytestmark = [pytest.mark.db, pytest.mark.s3]

BUCKET = "gpdl-images"
COUNTS = {"cat": 4, "dog": 3}
REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, stopped at the end."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_answering(f"{endpoint}/moto-api/", server, 30):
            raise RuntimeError("moto_server did not start")
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def bucket(moto_endpoint: str, dsn: str, shared_tmp_factory: Callable[[str], Path]):
    """The bucket's files (also on local disk) and a working server config."""
    import boto3

    local = shared_tmp_factory("gpdl-s3-") / "train"
    written = write_class_tree(local, COUNTS, size=(6, 5))
    (local / "cat" / "broken.png").write_bytes(b"not a png")
    session = boto3.session.Session(aws_access_key_id="setup", aws_secret_access_key="setup",
                                    region_name=REGION)
    s3 = session.client("s3", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket=BUCKET)
    for path in sorted(local.rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), BUCKET, f"train/{path.relative_to(local)}")
    s3.put_object(Bucket=BUCKET, Key="train/.hidden/skip.png", Body=b"x")
    s3.put_object(Bucket=BUCKET, Key="empty/", Body=b"")

    iam = session.client("iam", endpoint_url=moto_endpoint)
    iam.create_user(UserName="gpdl")
    iam.put_user_policy(UserName="gpdl", PolicyName="s3", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="gpdl")["AccessKey"]
    api.add_server("minio", endpoint_url=moto_endpoint, key=key["AccessKeyId"],
                   secret=key["SecretAccessKey"], region=REGION, dsn=dsn)
    api.add_server("wrongkey", endpoint_url=moto_endpoint, key="AKIAWRONGWRONGWRONG0",
                   secret="wrong", region=REGION, dsn=dsn)
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset-auth", data=b"0",
                                     headers={"Content-Type": "text/plain"}, method="POST")
    urllib.request.urlopen(request, timeout=10).close()  # IAM checks on from here
    return local, written


@pytest.fixture
def table(conn) -> Iterator[str]:
    """A fresh table name, dropped (with its _errors) afterwards."""
    yield from fresh_table(conn, "s3")


def test_s3_load_matches_the_same_files_from_disk(dsn, conn, bucket, table) -> None:
    local, written = bucket
    result = load_images(dsn, f"s3://{BUCKET}/train", table, server="minio", batch_size=3)
    assert (result.images, result.errors, result.files) == (len(written), 1, len(written) + 1)
    from_s3 = table_images(conn, table)
    load_images(dsn, str(local), table + "_disk", batch_size=3)
    try:
        from_disk = table_images(conn, table + "_disk")
    finally:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP TABLE {}, {}").format(
                sql.Identifier(table + "_disk"), sql.Identifier(table + "_disk_errors")))
        conn.commit()
    assert set(from_s3) == {f"s3://{BUCKET}/train/{Path(p).relative_to(local)}"
                            for p in written}
    for path, (name, label, pixels) in from_disk.items():
        s3_name, s3_label, s3_pixels = from_s3[f"s3://{BUCKET}/train/"
                                               f"{Path(path).relative_to(local)}"]
        assert (s3_name, s3_label) == (name, label)
        np.testing.assert_array_equal(s3_pixels, pixels)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT path, reason FROM {}").format(
            sql.Identifier(f"{table}_errors")))
        (path, reason), = cur.fetchall()
    assert path == f"s3://{BUCKET}/train/cat/broken.png" and reason.startswith("not an image")


def test_s3_glob(dsn, conn, bucket, table) -> None:
    result = load_images(dsn, f"s3://{BUCKET}/train/dog/*.png", table, server="minio")
    assert result.images == COUNTS["dog"] and result.errors == 0
    assert {label for _, label, _ in table_images(conn, table).values()} == {"dog"}


def test_bad_credentials_are_refused_before_any_table(dsn, conn, bucket, table) -> None:
    before = user_tables(conn)
    with pytest.raises(UsageError, match=r"access denied .* server config 'wrongkey'.*"
                                         r"check its credentials"):
        load_images(dsn, f"s3://{BUCKET}/train", table, server="wrongkey")
    assert user_tables(conn) == before


def test_no_credentials_are_refused(dsn, conn, bucket, table, monkeypatch) -> None:
    before = user_tables(conn)
    with pytest.raises(UsageError, match="server 'nosuch' is not configured"):
        load_images(dsn, f"s3://{BUCKET}/train", table, server="nosuch")
    assert user_tables(conn) == before


def test_missing_bucket_and_prefix(dsn, conn, bucket, table) -> None:
    before = user_tables(conn)
    with pytest.raises(UsageError, match="does not exist"):
        load_images(dsn, "s3://no-such-bucket/train", table, server="minio")
    with pytest.raises(UsageError, match="does not exist"):
        load_images(dsn, f"s3://{BUCKET}/nothing/here", table, server="minio")
    with pytest.raises(UsageError, match="no files found"):
        load_images(dsn, f"s3://{BUCKET}/train/*.jpg", table, server="minio")
    assert user_tables(conn) == before


def test_sql_create_table_as_from_s3(conn, bucket, table) -> None:
    _, written = bucket
    with conn.cursor() as cur:
        cur.execute(sql.SQL(
            "CREATE TABLE {} AS SELECT * FROM gpdl.read_images(%s, batch_size => 10, "
            "server => 'minio')").format(sql.Identifier(table)), (f"s3://{BUCKET}/train",))
        cur.execute(sql.SQL("SELECT sum(dims[1]), sum(cardinality(error_paths)) FROM {}").format(
            sql.Identifier(table)))
        assert cur.fetchone() == (len(written), 1)
    conn.commit()


def test_credentials_never_reach_sql_or_the_log(dsn, conn, bucket, servers_dir,
                                                server_logs) -> None:
    config = json.loads((servers_dir / "minio.json").read_text())["storage_options"]
    assert oct((servers_dir / "minio.json").stat().st_mode & 0o777) == "0o600"
    with conn.cursor() as cur:
        cur.execute("SELECT coalesce(string_agg(query, ' '), '') FROM pg_stat_activity")
        assert config["secret"] not in cur.fetchone()[0]
    conn.commit()
    logged = server_logs()
    assert "minio" in logged  # the statements naming the config were logged...
    assert config["secret"] not in logged  # ...never its secret


def test_s3_connection_errors_are_clear(dsn, conn, servers_dir, table) -> None:
    with conn.cursor() as cur:  # the OS user the server reads configs as
        cur.execute("SELECT value FROM gpdl.config WHERE key = 'server_user'")
        owner = cur.fetchone()[0]
    conn.commit()
    add_server(servers_dir, "down", owner=owner, options={
        "key": "k", "secret": "s", "client_kwargs": {
            "endpoint_url": f"http://127.0.0.1:{free_port()}", "region_name": REGION},
        "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}}})
    before = user_tables(conn)
    with pytest.raises(UsageError, match=r"cannot list s3://b/x: .*Connect"):
        load_images(dsn, "s3://b/x", table, server="down")
    assert user_tables(conn) == before
    with pytest.raises(psycopg2.Error), conn.cursor() as cur:
        cur.execute("SELECT gpdl.count_files('s3://b/x', 'down')")
    conn.rollback()
