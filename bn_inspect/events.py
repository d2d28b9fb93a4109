"""TensorFlow-free reading and writing of TensorBoard event files.

An event file is a sequence of records, each framed as::

    uint64 length | uint32 masked_crc32c(length) | payload | uint32 masked_crc32c(payload)

where the payload is a serialized ``tensorboard.compat.proto.event_pb2.Event``. The first
record of a file carries ``file_version = "brain.Event:2"``.

``tensorboard``'s own ``EventFileWriter`` / ``EventFileLoader`` do the same but route file I/O
through ``tf.io.gfile`` and so import TensorFlow (seconds) whenever it is installed; these
functions use plain files and ``google-crc32c`` instead.

Example:
    >>> import tempfile
    >>> from tensorboard.compat.proto import event_pb2
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
from collections.abc import Iterator
from pathlib import Path

import google_crc32c
from tensorboard.compat.proto import event_pb2

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


def iter_records(path: str | os.PathLike) -> Iterator[bytes]:
    """Yield the payloads of a record file; stop quietly at a truncated or corrupt tail.

    A process killed while writing leaves a partial last record: everything before it is
    returned, the partial record is not.
    """
    with open(path, "rb") as handle:
        data = handle.read()
    offset, size = 0, len(data)
    while offset + 12 <= size:
        header = data[offset : offset + 8]
        (length,) = _HEADER.unpack(header)
        (header_crc,) = _CRC.unpack_from(data, offset + 8)
        if header_crc != masked_crc32c(header):
            return
        start, end = offset + 12, offset + 12 + length
        if end + 4 > size:
            return
        payload = data[start:end]
        (payload_crc,) = _CRC.unpack_from(data, end)
        if payload_crc != masked_crc32c(payload):
            return
        yield payload
        offset = end + 4


def read_events(path: str | os.PathLike) -> Iterator[event_pb2.Event]:
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
    """Append ``Event`` protos to a new event file in ``log_dir``; synchronous, no threads.

    ``flush()`` pushes buffered records to the OS, so a killed process loses at most what was
    written since the last flush.
    """

    def __init__(self, log_dir: str | os.PathLike, filename_suffix: str = ".bn_inspect") -> None:
        directory = Path(log_dir)
        directory.mkdir(parents=True, exist_ok=True)
        name = (
            f"events.out.{EVENT_FILE_MARKER}.{time.time():.6f}.{socket.gethostname()}."
            f"{os.getpid()}.{id(self) % 100000}{filename_suffix}"
        )
        self.path = directory / name
        self._handle = open(self.path, "ab")  # noqa: SIM115 (kept open until close())
        self.write(event_pb2.Event(wall_time=time.time(), file_version=FILE_VERSION))
        self.flush()

    def write(self, event: event_pb2.Event) -> None:
        """Append one event (buffered until :meth:`flush`)."""
        self._handle.write(frame_record(event.SerializeToString()))

    def flush(self) -> None:
        """Hand everything written so far to the operating system."""
        self._handle.flush()

    def close(self) -> None:
        """Flush and close the file; further writes raise ``ValueError``."""
        if not self._handle.closed:
            self._handle.flush()
            self._handle.close()

    def __enter__(self) -> EventFileWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
