"""Where logs live: a local path or any fsspec URL (``s3://``, ``gs://``, ``memory://``, ``file://``).

Every file the writer, the reader and the CLI touch goes through a :class:`Location`: an fsspec
filesystem plus a path on it, shown to users only through :func:`redact`, so credentials never
reach a message. Local paths use fsspec's local filesystem (plain files); anything else needs
the fsspec implementation of its protocol (``pip install "bn-inspect[s3]"`` for ``s3://``,
``"bn-inspect[gcs]"`` for ``gs://``), and :func:`locate` says so when it is missing.

Example:
    >>> loc = locate("memory://logs/run_a")
    >>> loc.is_local, str(loc.join("events.out.tfevents.1"))
    (False, 'memory://logs/run_a/events.out.tfevents.1')
    >>> redact("s3://AKIA:secret@bucket/run")
    's3://***@bucket/run'
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

# Protocol -> the bn-inspect extra that installs its fsspec implementation.
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}
# Protocols of object stores: no directories, no append, buckets made by their owners.
OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "oss"}
_CREDENTIAL_OPTION = re.compile(r"key|secret|token|password|credential|session", re.IGNORECASE)
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/@\s]+@")


class StorageError(ValueError):
    """A log location that cannot be used; the message (credentials redacted) names the fix."""


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with the ``user:password@`` part of every URL, and each of ``secrets``, masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _USERINFO.sub(r"\g<scheme>***@", text)


def _userinfo(url: str) -> str:
    match = _USERINFO.match(url)
    return match.group(0)[len(match.group("scheme")) : -1] if match else ""


@dataclass(frozen=True)
class Location:
    """A path on an fsspec filesystem; ``str()`` is the URL (or local path) with credentials masked."""

    fs: Any
    path: str
    shown: str
    secrets: tuple[str, ...] = ()

    @property
    def is_local(self) -> bool:
        """Whether this is a local file or directory (appendable, no object store)."""
        return isinstance(self.fs, LocalFileSystem)

    @property
    def name(self) -> str:
        """The last component of the path."""
        return posixpath.basename(self.path.rstrip("/"))

    def join(self, *names: str) -> Location:
        """The location of ``names`` inside this one."""
        sep = os.sep if self.is_local and not self.shown.startswith("file:") else "/"
        shown = self.shown.rstrip("/\\") + sep + sep.join(names) if names else self.shown
        return Location(self.fs, posixpath.join(self.path, *names), shown, self.secrets)

    def redact(self, text: str) -> str:
        """``text`` with this location's credentials masked (e.g. an exception from its filesystem)."""
        return redact(text, self.secrets)

    def __str__(self) -> str:
        return self.shown


def _option_secrets(options: Mapping[str, Any]) -> list[str]:
    """The string values of credential-like storage options (key, secret, token, password, ...)."""
    found = []
    for name, value in options.items():
        if isinstance(value, Mapping):
            found += _option_secrets(value)
        elif isinstance(value, str) and _CREDENTIAL_OPTION.search(name):
            found.append(value)
    return found


def locate(target: str | os.PathLike | Location, storage_options: Mapping[str, Any] | None = None) -> Location:
    """The :class:`Location` of a local path or fsspec URL.

    ``storage_options`` go to the filesystem (e.g. ``{"endpoint_url": ...}`` for s3fs); fsspec
    also reads defaults from ``FSSPEC_<PROTOCOL>_<OPTION>`` environment variables. Raises
    :class:`StorageError` for an unknown protocol, a protocol whose package is missing (naming
    the extra to install), or credentials in a URL its filesystem would not read.
    """
    if isinstance(target, Location):
        return target
    text = os.fspath(target)
    if "://" not in text and "::" not in text:
        return Location(LocalFileSystem(), LocalFileSystem._strip_protocol(text), text)
    shown = redact(text)
    userinfo = _userinfo(text)
    secrets = tuple(s for s in (userinfo, *_option_secrets(storage_options or {})) if s)
    protocol = text.split("://", 1)[0].split("::")[-1].lower()
    try:
        fs, path = fsspec.core.url_to_fs(text, **dict(storage_options or {}))
    except ImportError as exc:
        extra = EXTRAS.get(protocol)
        fix = f'pip install "bn-inspect[{extra}]"' if extra else f"install the package fsspec names: {exc}"
        raise StorageError(
            f"bn-inspect: {shown!r} needs the fsspec implementation of {protocol}://, which is not installed; {fix}."
        ) from None
    except ValueError as exc:
        raise StorageError(
            f"bn-inspect: cannot use {shown!r}: {redact(str(exc), secrets)}. Pass a local directory or an "
            "fsspec URL such as s3://bucket/run, gs://bucket/run, memory://run."
        ) from None
    if userinfo and userinfo in path:
        raise StorageError(
            f"bn-inspect: {shown!r} carries credentials in the URL, which {protocol}:// does not read. Give "
            "them the filesystem's usual way (for S3: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, "
            "or storage_options) and remove them from the URL."
        )
    return Location(fs, path, shown, secrets)


def read_bytes(location: Location) -> bytes:
    """The whole content of a file."""
    return location.fs.cat_file(location.path)


def write_object(location: Location, data: bytes) -> None:
    """Create or replace a file with ``data`` in one write (one PUT on object stores)."""
    location.fs.pipe_file(location.path, data)


def is_directory(location: Location) -> bool:
    """Whether ``location`` is a directory (on object stores: a prefix with objects under it)."""
    location.fs.invalidate_cache(location.path)
    return bool(location.fs.isdir(location.path))


def exists(location: Location) -> bool:
    """Whether anything (file or directory) is at ``location``."""
    return bool(location.fs.exists(location.path))


def make_directory(location: Location) -> None:
    """Create ``location`` and its parents; nothing on object stores, whose "directories" are
    key prefixes (there ``makedirs`` would create a missing bucket: a bucket is the user's to make)."""
    if not set(_protocols(location.fs)) & OBJECT_STORES:
        location.fs.makedirs(location.path, exist_ok=True)


def _protocols(fs: Any) -> tuple[str, ...]:
    return (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)


def files_in(location: Location) -> list[Location]:
    """The files directly inside directory ``location`` (not recursive), in listing order."""
    location.fs.invalidate_cache(location.path)
    entries = location.fs.ls(location.path, detail=True)
    return [location.join(posixpath.basename(e["name"].rstrip("/"))) for e in entries if e.get("type") == "file"]


def relative_path(location: Location, root: Location) -> str:
    """The path of ``location`` inside ``root``, ``/``-separated."""
    return posixpath.relpath(location.path, root.path.rstrip("/") or "/")


def files_below(location: Location) -> list[Location]:
    """Every file under ``location``, recursively, sorted by path; one listing on object stores.

    Caches of the filesystem are dropped first, so files written by another process appear.
    """
    location.fs.invalidate_cache(location.path)
    root = location.path.rstrip("/")
    paths = sorted(location.fs.find(location.path, withdirs=False, detail=False))
    return [location.join(*posixpath.relpath(p, root).split("/")) for p in paths if p.rstrip("/") != root]
