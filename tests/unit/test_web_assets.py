"""Fetching the web assets, from a registry on disk (``file://``): pinned, checked, once."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from gpdl_backend.errors import FatalError
from gpdl_jupyter import web_assets
from gpdl_jupyter.web_assets import PACKAGES, NpmPackage, WebAssets, fetch


def _registry(root: Path, name: str, version: str, files: dict[str, bytes]) -> str:
    """Write ``<name>-<version>.tgz`` where npm's registry serves it; return its integrity."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, content in files.items():
            member = tarfile.TarInfo(f"package/{path}")
            member.size = len(content)
            archive.addfile(member, io.BytesIO(content))
    tarball = root / name / "-" / f"{name}-{version}.tgz"
    tarball.parent.mkdir(parents=True)
    tarball.write_bytes(buffer.getvalue())
    return "sha512-" + base64.b64encode(hashlib.sha512(buffer.getvalue()).digest()).decode()


@pytest.fixture
def registry(tmp_path: Path) -> tuple[str, NpmPackage]:
    root = tmp_path / "registry"
    integrity = _registry(root, "widget.js", "1.2.3", {
        "dist/widget.js": b"var widget = 1;", "README.md": b"not kept", "package.json": b"{}"})
    package = NpmPackage("widget.js", "1.2.3", integrity, ("dist/widget.js",))
    return root.as_uri(), package


def test_pinned_packages_are_nbconverts_reveal_and_require() -> None:
    versions = {package.name: package.version for package in PACKAGES}
    assert versions == {"reveal.js": "4.0.2", "requirejs": "2.1.10", "jquery": "2.2.4"}
    assert all(package.integrity.startswith("sha512-") for package in PACKAGES)
    assert PACKAGES[2].tarball_url() == (
        "https://registry.npmjs.org/reveal.js/-/reveal.js-4.0.2.tgz")


def test_fetch_keeps_the_listed_files_then_skips(registry: tuple[str, NpmPackage],
                                                 tmp_path: Path) -> None:
    url, package = registry
    lines: list[str] = []
    assets = fetch(tmp_path / "assets", registry=url, packages=[package], progress=lines.append)
    assert assets.path(package, "dist/widget.js").read_bytes() == b"var widget = 1;"
    assert not (tmp_path / "assets" / "widget.js-1.2.3" / "README.md").exists()
    assert lines[0] == f"web assets: fetching {url}/widget.js/-/widget.js-1.2.3.tgz"
    assert "sha512 checked" in lines[1]
    assert WebAssets.find(tmp_path / "assets", [package]) == assets

    lines.clear()
    fetch(tmp_path / "assets", registry=url + "/gone", packages=[package], progress=lines.append)
    assert lines == [f"web assets: widget.js-1.2.3 already in {tmp_path / 'assets'}"]


def test_a_tarball_that_does_not_match_its_pin_is_refused(registry: tuple[str, NpmPackage],
                                                          tmp_path: Path) -> None:
    url, package = registry
    forged = NpmPackage(package.name, package.version, "sha512-" + "A" * 86 + "==",
                        package.files)
    with pytest.raises(FatalError, match="not the pinned"):
        fetch(tmp_path / "assets", registry=url, packages=[forged], progress=lambda _: None)
    assert list((tmp_path / "assets").iterdir()) == []
    assert WebAssets.find(tmp_path / "assets", [forged]) is None


def test_a_missing_file_or_tarball_is_one_clear_error(registry: tuple[str, NpmPackage],
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web_assets, "ATTEMPTS", 1)  # no waits between tries
    url, package = registry
    wanting = NpmPackage(package.name, package.version, package.integrity,
                         ("dist/widget.js", "dist/widget.css"))
    with pytest.raises(FatalError, match=r"has no file dist/widget\.css"):
        fetch(tmp_path / "assets", registry=url, packages=[wanting], progress=lambda _: None)
    assert list((tmp_path / "assets").iterdir()) == []
    absent = NpmPackage("absent", "0.1.0", package.integrity, ("x.js",))
    with pytest.raises(FatalError, match="cannot download"):
        fetch(tmp_path / "assets", registry=url, packages=[absent], progress=lambda _: None)
