"""TensorFlow-free reading and writing of TensorBoard event files.

An event file is a sequence of records, each framed as::

    uint64 length | uint32 masked_crc32c(length) | payload | uint32 masked_crc32c(payload)

where the payload is a serialized ``tensorboard.compat.proto.event_pb2.Event``. The first
record of a file carries ``file_version = "brain.Event:2"``.

``tensorboard``'s own ``EventFileWriter`` / ``EventFileLoader`` do the same but route file I/O
through ``tf.io.gfile`` and so import TensorFlow (seconds) whenever it is installed; these
functions use fsspec (:mod:`bn_inspect.storage`: plain files locally, any fsspec URL) and
``google-crc32c`` instead.

Example:
    >>> import tempfile
    >>> from tensorboard.compat.proto import event_pb2

from bn_inspect import storage
    >>> d = tempfile.mkdtemp()
    >>> with EventFileWriter(d) as w:
    ...     w.write(event_pb2.Event(step=3))
    >>> [e.step for e in read_events(w.path)][-1]
    3
"""

from __future__ import annotations

import os
import socket
import struct
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import google_crc32c
import numpy as np
from tensorboard.compat.proto import event_pb2

from bn_inspect import storage

FILE_VERSION = "brain.Event:2"
EVENT_FILE_MARKER = "tfevents"
_HEADER = struct.Struct("<Q")
_CRC = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8


def masked_crc32c(data: bytes) -> int:
    """TensorFlow's masked CRC32C of ``data``."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame_record(payload: bytes) -> bytes:
    """Frame one payload as an event-file record."""
    header = _HEADER.pack(len(payload))
    return header + _CRC.pack(masked_crc32c(header)) + payload + _CRC.pack(masked_crc32c(payload))


class DamagedEventFileWarning(UserWarning):
    """Some records of an event file were damaged and skipped (the rest was read)."""


@dataclass
class RecordScan:
    """The intact records of an event file's bytes, resynchronising after damaged ones.

    A record is damaged when its length's CRC or its payload's CRC does not match (a flipped
    byte, a bad block). A damaged payload is skipped by its (CRC-checked) length; after a
    damaged length the scan moves on to the next offset where a whole record checks out. A
    partial record at the end (a writer killed mid-write) is not damage: the scan stops there
    quietly. After iterating, ``skipped_records`` / ``skipped_bytes`` / ``first_offset`` say
    what was skipped.

    Example:
        >>> data = frame_record(b"a") + frame_record(b"bb") + frame_record(b"c")
        >>> damaged = data[:20] + b"X" + data[21:]  # a byte of the second record's length
        >>> scan = RecordScan(damaged)
        >>> list(scan), scan.skipped_records, scan.skipped_bytes, scan.first_offset
        ([b'a', b'c'], 1, 18, 17)
    """

    data: bytes
    skipped_records: int = 0
    skipped_bytes: int = 0
    first_offset: int | None = None

    def _record_at(self, offset: int) -> tuple[int, bool] | None:
        """``(end, payload intact)`` of the record at ``offset``; ``None`` when its length
        does not check out or the file ends inside it."""
        data, size = self.data, len(self.data)
        if offset + 12 > size:
            return None
        header = data[offset : offset + 8]
        if _CRC.unpack_from(data, offset + 8)[0] != masked_crc32c(header):
            return None
        end = offset + 12 + _HEADER.unpack(header)[0]
        if end + 4 > size:
            return None
        return end + 4, _CRC.unpack_from(data, end)[0] == masked_crc32c(data[offset + 12 : end])

    def _next_intact(self, start: int) -> int | None:
        """The first offset after ``start`` where an intact record begins (a length whose CRC
        checks out and a payload whose CRC does too)."""
        size = len(self.data)
        if start + 13 > size:
            return None
        window = np.ndarray((size - start - 12,), dtype="<u8", buffer=self.data, offset=start + 1, strides=(1,))
        offsets = np.arange(start + 1, start + 1 + window.size, dtype=np.uint64)
        candidates = np.flatnonzero(window <= np.uint64(size - 16) - offsets) + start + 1  # lengths that fit
        for offset in candidates.tolist():
            found = self._record_at(offset)
            if found is not None and found[1]:
                return offset
        return None

    def _skip(self, offset: int, end: int) -> None:
        self.skipped_records += 1
        self.skipped_bytes += end - offset
        if self.first_offset is None:
            self.first_offset = offset

    def __iter__(self) -> Iterator[bytes]:
        offset, size = 0, len(self.data)
        while offset + 12 <= size:
            found = self._record_at(offset)
            if found is not None:
                end, intact = found
                if intact:
                    yield self.data[offset + 12 : end - 4]
                else:
                    self._skip(offset, end)
                offset = end
                continue
            header_ok = _CRC.unpack_from(self.data, offset + 8)[0] == masked_crc32c(self.data[offset : offset + 8])
            if header_ok:  # a length that checks out but runs past the end: a partial tail
                return
            following = self._next_intact(offset)
            self._skip(offset, size if following is None else following)
            if following is None:
                return
            offset = following

    def describe(self, name: str) -> str:
        """One line saying what was skipped in the file ``name``."""
        return (
            f"{name}: skipped {self.skipped_records} damaged record(s), {self.skipped_bytes} bytes from byte "
            f"offset {self.first_offset}; the records before and after were read"
        )


def iter_records(path: str | os.PathLike | storage.Location) -> Iterator[bytes]:
    """Yield the intact payloads of a record file (see :class:`RecordScan`): damaged records
    are skipped with one :class:`DamagedEventFileWarning` naming the file; a truncated tail
    stops the file quietly.

    A process killed while writing leaves a partial last record: everything before it is
    returned, the partial record is not.
    """
    location = storage.locate(path)
    scan = RecordScan(storage.read_bytes(location))
    yield from scan
    if scan.skipped_records:  # str(): the URL with any credentials masked
        warnings.warn(scan.describe(str(location)), DamagedEventFileWarning, stacklevel=2)


def read_events(path: str | os.PathLike | storage.Location) -> Iterator[event_pb2.Event]:
    """Yield the ``Event`` protos of one event file (see :func:`iter_records`)."""
    for payload in iter_records(path):
        event = event_pb2.Event()
        try:
            event.ParseFromString(payload)
        except Exception:  # a payload that passed its CRC but is not an Event: stop like TB does
            return
        yield event


def is_event_file(name: str) -> bool:
    """Whether a file name is a TensorBoard event file."""
    return EVENT_FILE_MARKER in name and not name.endswith(".tmp")


class EventFileWriter:
    """Write ``Event`` protos to a new event file in ``log_dir``; synchronous, no threads.

    ``log_dir`` is a local path or any fsspec URL (:func:`bn_inspect.storage.locate`). Locally
    the records go to one file and ``flush()`` hands them to the OS. Object stores cannot
    append, so there ``flush()`` uploads the records written since the previous flush as one
    new object (a complete event file: version record + those records; names sort in writing
    order). Either way a killed process loses at most what was written since the last flush,
    and an upload that fails keeps its records for the next flush.

    Raises :class:`bn_inspect.storage.StorageError` when ``log_dir`` cannot be written.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike | storage.Location,
        filename_suffix: str = ".bn_inspect",
        storage_options: dict | None = None,
    ) -> None:
        self._directory = storage.locate(log_dir, storage_options)
        self._base = (
            f"events.out.{EVENT_FILE_MARKER}.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}.{id(self) % 100000}"
        )
        self._suffix = filename_suffix
        self._segments = 0
        self._pending: list[bytes] = []
        self._handle = None
        self._closed = False
        self._version = frame_record(
            event_pb2.Event(wall_time=time.time(), file_version=FILE_VERSION).SerializeToString()
        )
        try:
            storage.make_directory(self._directory)
            if self._directory.is_local:
                self.location = self._directory.join(self._base + filename_suffix)
                self._handle = open(self.location.path, "ab")  # noqa: SIM115 (kept open until close())
                self._handle.write(self._version)
                self._handle.flush()
            else:
                self.location = self._upload([])
        except Exception as exc:  # OSError locally; object stores raise their clients' own errors
            raise self._write_error(exc) from None

    def _write_error(self, exc: Exception) -> storage.StorageError:
        where = self._directory
        reason = where.redact(f"{type(exc).__name__}: {exc}")
        return storage.StorageError(
            f"bn-inspect: cannot write to log_dir {str(where)!r} ({reason}); pass a writable directory "
            "or URL (object stores: an existing bucket and credentials that may write to it)."
        )

    @property
    def path(self) -> str:
        """The event file being written (object stores: the latest object uploaded)."""
        return self.location.path if self._directory.is_local else str(self.location)

    def _upload(self, records: list[bytes]) -> storage.Location:
        target = self._directory.join(f"{self._base}.{self._segments:06d}{self._suffix}")
        storage.write_object(target, self._version + b"".join(records))
        self._segments += 1
        return target

    def write(self, event: event_pb2.Event) -> None:
        """Append one event (buffered until :meth:`flush`)."""
        if self._closed:
            raise ValueError("write to a closed EventFileWriter")
        record = frame_record(event.SerializeToString())
        if self._handle is not None:
            self._handle.write(record)
        else:
            self._pending.append(record)

    def flush(self) -> None:
        """Hand everything written so far to the OS, or upload it as one new object."""
        if self._handle is not None:
            self._handle.flush()
        elif self._pending:
            self.location = self._upload(self._pending)
            self._pending = []

    def close(self) -> None:
        """Flush and close the file; further writes raise ``ValueError``."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        if self._handle is not None:
            self._handle.close()

    def __enter__(self) -> EventFileWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
