"""The compact binary body of the plugin's data routes: a JSON header, then float32 arrays.

Layout (little-endian)::

    uint32          N, the byte length of the header
    N bytes         UTF-8 JSON header, space-padded so that 4 + N is a multiple of 4
    float32 data    every array, C order, back to back

The header is ``{"meta": {...}, "arrays": {name: {"offset": o, "shape": [...]}}}`` where
``o`` is the byte offset of the array from the start of the float32 data. NaN stays NaN
(JSON could not carry it). In JavaScript an array is
``new Float32Array(buffer, 4 + N + o, product(shape))``.

Example:
    >>> body = encode({"run": "a"}, {"values": np.zeros((2, 3))})
    >>> n = int.from_bytes(body[:4], "little")
    >>> json.loads(body[4:4 + n])["arrays"]
    {'values': {'offset': 0, 'shape': [2, 3]}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np

CONTENT_TYPE = "application/octet-stream"


def encode(meta: Mapping, arrays: Mapping[str, np.ndarray]) -> bytes:
    """Serialize ``meta`` (JSON-compatible, no NaN) and named arrays (stored as float32)."""
    chunks: list[bytes] = []
    index: dict[str, dict] = {}
    offset = 0
    for name, values in arrays.items():
        array = np.ascontiguousarray(values, dtype="<f4")
        index[name] = {"offset": offset, "shape": list(array.shape)}
        chunks.append(array.tobytes())
        offset += array.nbytes
    header = json.dumps({"meta": meta, "arrays": index}, allow_nan=False, separators=(",", ":")).encode("utf-8")
    header += b" " * (-len(header) % 4)
    return len(header).to_bytes(4, "little") + header + b"".join(chunks)
