"""The JavaScript and CSS the offline report and slides need, fetched once from the npm registry.

nbconvert's templates load require.js, jQuery and reveal.js from CDNs, which
a machine without network (or one that reaches only package registries)
cannot do. ``scripts/setup.sh`` runs ``python -m gpdl_jupyter.web_assets``,
which downloads each pinned package's tarball from the npm registry
(``$npm_config_registry`` when set, as npm itself reads it), checks it
against the sha512 pinned here (the registry's ``dist.integrity``, as a
``package-lock.json`` would pin it), and keeps only the files the templates
use, in ``<venv>/share/gpdl/web-assets/<name>-<version>/`` (ignored with
``.venv``; ``$GPDL_WEB_ASSETS`` points elsewhere). A package already there
with a matching stamp is skipped, so running it again costs nothing.

Versions are nbconvert's own: reveal.js 4.0.2 and require.js 2.1.10, its
templates' defaults; its jQuery 2.0.3 was never published on npm, so 2.2.4,
the last 2.x. MathJax is not fetched: the reports leave it out unless a
notebook has math (see ``gpdl_jupyter.report``).

Example::

    assets = WebAssets.find()  # None until setup fetched them
    if assets is None:
        assets = fetch()
    print(assets.path(REVEAL, "dist/reveal.js"))
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gpdl_backend.errors import FatalError

__all__ = [
    "JQUERY",
    "PACKAGES",
    "REQUIREJS",
    "REVEAL",
    "NpmPackage",
    "WebAssets",
    "default_directory",
    "fetch",
]

REGISTRY = "https://registry.npmjs.org"
"""The public npm registry; ``$npm_config_registry`` replaces it (a mirror)."""
STAMP = ".integrity"
"""Written last in a package's folder: the integrity of the tarball it came from."""
ATTEMPTS = 3
"""Downloads tried per package before giving up (network errors only)."""


@dataclass(frozen=True)
class NpmPackage:
    """One pinned npm package and the files of it that are kept.

    Args:
        name: the package's npm name.
        version: the exact version.
        integrity: ``sha512-<base64>`` of its tarball, the registry's ``dist.integrity``.
        files: paths inside the package (without ``package/``) to keep.
    """

    name: str
    version: str
    integrity: str
    files: tuple[str, ...]

    @property
    def folder(self) -> str:
        """``<name>-<version>``, the folder it is kept in."""
        return f"{self.name}-{self.version}"

    def tarball_url(self, registry: str = REGISTRY) -> str:
        """Where the registry serves its tarball (npm's layout for unscoped names)."""
        return f"{registry.rstrip('/')}/{self.name}/-/{self.name}-{self.version}.tgz"


REQUIREJS = NpmPackage(
    "requirejs", "2.1.10",
    "sha512-4JqdTihK3kOnT387LxCHuJZ/9QsKg2EIl7LmaW35PIyM4LwCI2jwyy4fy6pbY/ZZH2JoY/QEcb5PzULFPP6gcQ==",
    ("require.js",))
JQUERY = NpmPackage(
    "jquery", "2.2.4",
    "sha512-lBHj60ezci2u1v2FqnZIraShGgEXq35qCzMv4lITyHGppTnA13rwR0MgwyNJh9TnDs3aXUvd1xjAotfraMHX/Q==",
    ("dist/jquery.min.js",))
REVEAL = NpmPackage(
    "reveal.js", "4.0.2",
    "sha512-LWZSUenufF1gpD7npxJ7KfoQQFKgc1D6XrLTFgKlwWNP1BQ74hT48KONFWMAw+8R/QUeaScCLCLrBVHDfFIEiw==",
    ("LICENSE", "dist/reveal.js", "dist/reveal.css", "dist/theme/simple.css",
     "plugin/notes/notes.js"))
PACKAGES = (REQUIREJS, JQUERY, REVEAL)
"""What the report (require.js) and the slides (all three) need."""


def default_directory() -> Path:
    """``$GPDL_WEB_ASSETS``, else ``<sys.prefix>/share/gpdl/web-assets`` (in the venv)."""
    configured = os.environ.get("GPDL_WEB_ASSETS")
    return Path(configured) if configured else Path(sys.prefix) / "share" / "gpdl" / "web-assets"


@dataclass(frozen=True)
class WebAssets:
    """A directory holding every package of ``packages``, each complete."""

    directory: Path
    packages: tuple[NpmPackage, ...] = PACKAGES

    @classmethod
    def find(cls, directory: Path | None = None,
             packages: Sequence[NpmPackage] = PACKAGES) -> WebAssets | None:
        """The assets in ``directory``, or None when a package is missing or stale.

        Args:
            directory: where to look. Defaults to ``default_directory()``.
            packages: the packages that must be there. Defaults to ``PACKAGES``.
        """
        found = cls(directory or default_directory(), tuple(packages))
        return found if all(found.has(package) for package in found.packages) else None

    def has(self, package: NpmPackage) -> bool:
        """Whether ``package`` is here, from a tarball of its pinned integrity."""
        stamp = self.directory / package.folder / STAMP
        return stamp.is_file() and stamp.read_text().strip() == package.integrity

    def path(self, package: NpmPackage, file: str) -> Path:
        """Where one of the package's kept ``files`` is."""
        if file not in package.files:
            raise ValueError(f"{file} is not kept from {package.folder}")
        return self.directory / package.folder / file


def fetch(directory: Path | None = None, registry: str | None = None,
          packages: Sequence[NpmPackage] = PACKAGES,
          progress: Callable[[str], None] = print) -> WebAssets:
    """Download and unpack every package not yet in ``directory``; skip the others.

    Args:
        directory: where the packages go (created). Defaults to ``default_directory()``.
        registry: the npm registry's URL. Defaults to ``$npm_config_registry``,
            else ``REGISTRY``.
        packages: what to fetch. Defaults to ``PACKAGES``.
        progress: called with one line per package. Defaults to ``print``.

    Returns:
        The complete assets.

    Raises:
        FatalError: a tarball could not be downloaded, did not match its pinned
            integrity, or lacks a file; that package's folder is left as it was.

    Example::

        fetch(Path("/tmp/web-assets"), progress=lambda line: None)
    """
    assets = WebAssets(directory or default_directory(), tuple(packages))
    configured = os.environ.get("npm_config_registry")  # noqa: SIM112 (npm's own spelling)
    registry = registry or configured or REGISTRY
    assets.directory.mkdir(parents=True, exist_ok=True)
    for package in assets.packages:
        if assets.has(package):
            progress(f"web assets: {package.folder} already in {assets.directory}")
            continue
        url = package.tarball_url(registry)
        progress(f"web assets: fetching {url}")
        tarball = _download(url)
        _check_integrity(package, tarball)
        _unpack(package, tarball, assets.directory / package.folder)
        progress(f"web assets: {package.folder} ({len(tarball) / 1e6:.1f} MB, sha512 checked) "
                 f"in {assets.directory}")
    return assets


def _download(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "gpdl-web-assets"})
    attempt = 1
    while True:
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.read()
        except OSError as error:  # URLError and HTTPError among them
            missing = isinstance(error, urllib.error.HTTPError) and error.code == 404
            if missing or attempt == ATTEMPTS:
                raise FatalError(f"cannot download {url}: {error}") from error
            time.sleep(2 * attempt)
            attempt += 1


def _check_integrity(package: NpmPackage, tarball: bytes) -> None:
    algorithm, _, expected = package.integrity.partition("-")
    actual = base64.b64encode(hashlib.new(algorithm, tarball).digest()).decode()
    if actual != expected:
        raise FatalError(f"{package.folder}: the tarball's {algorithm} is {actual}, "
                         f"not the pinned {expected}")


def _unpack(package: NpmPackage, tarball: bytes, target: Path) -> None:
    """Write the package's kept files into a fresh folder, then put it in place."""
    staging = Path(tempfile.mkdtemp(prefix=f".{package.folder}-", dir=target.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
            for file in package.files:
                member = _member(archive, file)
                source = archive.extractfile(member) if member is not None else None
                if source is None:
                    raise FatalError(f"{package.folder}: its tarball has no file {file}")
                destination = staging.joinpath(*PurePosixPath(file).parts)
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.write_bytes(source.read())
        (staging / STAMP).write_text(package.integrity + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _member(archive: tarfile.TarFile, file: str) -> tarfile.TarInfo | None:
    """The regular file ``package/<file>`` (npm's tarballs have one top folder, named
    ``package`` by npm; a few old ones use another name)."""
    for member in archive.getmembers():
        parts = PurePosixPath(member.name).parts
        if member.isfile() and len(parts) > 1 and "/".join(parts[1:]) == file:
            return member
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gpdl_jupyter.web_assets [--dir DIR]``: fetch what is missing."""
    parser = argparse.ArgumentParser(prog="python -m gpdl_jupyter.web_assets",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=None,
                        help="where the packages go (default: $GPDL_WEB_ASSETS, else "
                             "<sys.prefix>/share/gpdl/web-assets)")
    args = parser.parse_args(argv)
    try:
        fetch(args.dir)
    except FatalError as error:
        print(f"web assets: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
