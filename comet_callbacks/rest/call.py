"""The one representation of a REST operation: :class:`Call`.

A ``Call`` is exactly what goes on the wire (method, path under the REST base, query, JSON
body or multipart file). The sender sends it, the offline log stores it as one JSON line, and
``comet-callbacks upload`` replays it — so online, offline and replay cannot drift apart.
"""

from __future__ import annotations

import base64
import io
import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Call", "FilePart", "MultipartStream", "RawJSON", "INLINE_LIMIT"]

#: File parts up to this size are kept inline (base64) when a call is written to disk.
INLINE_LIMIT = 256 * 1024


@dataclass(frozen=True)
class FilePart:
    """The multipart part ``file``: bytes in memory, or a path streamed from disk."""

    filename: str
    data: bytes | None = None
    path: str | None = None
    content_type: str = "application/octet-stream"

    def size(self) -> int:
        return len(self.data) if self.data is not None else os.path.getsize(self.path or "")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"filename": self.filename, "contentType": self.content_type}
        if self.data is not None:
            out["data"] = base64.b64encode(self.data).decode("ascii")
        else:
            out["path"] = self.path
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> FilePart:
        data = obj.get("data")
        return cls(
            filename=obj["filename"],
            data=base64.b64decode(data) if data is not None else None,
            path=obj.get("path"),
            content_type=obj.get("contentType", "application/octet-stream"),
        )


class RawJSON(str):
    """A JSON body already encoded as text (compact, UTF-8): sent as it is.

    The sender formats metric batches directly (a few times cheaper than building dicts and
    ``json.dumps``-ing them); a test pins that the text equals the encoding of the same
    batch built with :meth:`~.endpoints.Endpoints.log_metric_batch`.
    """

    __slots__ = ()


@dataclass(frozen=True)
class Call:
    """One REST request. ``path`` is relative to ``<root>/api/rest/v2/``."""

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    json: Any = None
    file: FilePart | None = None
    metadata: str | None = None  # multipart part "metadata" (compact JSON)
    gzip: bool = False  # send the JSON body gzip-compressed (the batch endpoints)
    #: Where a parameter value came from (``auto-logged``, ``cli``; None: ``manual``). Never
    #: sent with this request (the per-point endpoint has no such key): it is the ``source``
    #: of the value's item when the event goes in a parameter batch, live or by ``upload``.
    source: str | None = None

    @property
    def experiment_key(self) -> str | None:
        """The experiment this call writes to, if any (body or query)."""
        if isinstance(self.json, dict) and "experimentKey" in self.json:
            return self.json["experimentKey"]
        return self.query.get("experimentKey")

    def with_experiment_key(self, key: str) -> Call:
        """The same call for another experiment (used when replaying an offline run)."""
        query = dict(self.query)
        if "experimentKey" in query:
            query["experimentKey"] = key
        body = self.json
        if isinstance(body, dict) and "experimentKey" in body:
            body = {**body, "experimentKey": key}
        return Call(
            self.method, self.path, query, body, self.file, self.metadata, self.gzip, self.source
        )

    def body_text(self) -> str | None:
        """The JSON body as sent (compact, UTF-8 text, no NaN); a :class:`RawJSON` as it is."""
        if self.json is None:
            return None
        if type(self.json) is RawJSON:
            return self.json
        return json.dumps(self.json, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "path": self.path}
        if self.query:
            out["query"] = self.query
        if self.json is not None:
            out["json"] = self.json
        if self.file is not None:
            out["file"] = self.file.to_json()
        if self.metadata is not None:
            out["metadata"] = self.metadata
        if self.gzip:
            out["gzip"] = True
        if self.source is not None:
            out["source"] = self.source
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Call:
        f = obj.get("file")
        return cls(
            method=obj["method"],
            path=obj["path"],
            query=dict(obj.get("query") or {}),
            json=obj.get("json"),
            file=FilePart.from_json(f) if f else None,
            metadata=obj.get("metadata"),
            gzip=bool(obj.get("gzip", False)),
            source=obj.get("source"),
        )


class MultipartStream(io.RawIOBase):
    """A ``multipart/form-data`` body read lazily: file contents are streamed from disk.

    ``requests`` would read a file part fully into memory; this keeps memory flat for
    multi-GB model files. It is seekable to 0 so urllib3 can rewind it on a retry, and has a
    known length so ``Content-Length`` is sent.
    """

    def __init__(
        self, file: FilePart, metadata: str | None = None, boundary: str | None = None
    ) -> None:
        super().__init__()
        self.boundary = boundary or uuid.uuid4().hex
        b = self.boundary.encode()
        name = file.filename.replace('"', "%22").replace("\r", "").replace("\n", "")
        head = b""
        if metadata is not None:
            head += (
                b"--" + b + b'\r\nContent-Disposition: form-data; name="metadata"\r\n'
                b"Content-Type: application/json\r\n\r\n" + metadata.encode("utf-8") + b"\r\n"
            )
        head += (
            b"--"
            + b
            + b'\r\nContent-Disposition: form-data; name="file"; filename="'
            + name.encode("utf-8")
            + b'"\r\nContent-Type: '
            + file.content_type.encode()
            + b"\r\n\r\n"
        )
        self._head = head
        self._tail = b"\r\n--" + b + b"--\r\n"
        self._file = file
        self._size = file.size()
        self.length = len(head) + self._size + len(self._tail)
        self._pos = 0
        self._fh: Any = None

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            self._pos = offset
        elif whence == 1:
            self._pos += offset
        else:
            self._pos = self.length + offset
        return self._pos

    def __len__(self) -> int:
        return self.length

    def _file_read(self, start: int, n: int) -> bytes:
        if self._file.data is not None:
            return self._file.data[start : start + n]
        if self._fh is None:
            self._fh = open(self._file.path or "", "rb")  # noqa: SIM115 - closed in close()
        self._fh.seek(start)
        return self._fh.read(n)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.length - self._pos
        out = bytearray()
        hl, fl = len(self._head), self._size
        while n > 0 and self._pos < self.length:
            p = self._pos
            if p < hl:
                chunk = self._head[p : p + n]
            elif p < hl + fl:
                chunk = self._file_read(p - hl, min(n, 1 << 20))
                if not chunk:
                    raise OSError(f"file {self._file.path!r} shrank while uploading")
            else:
                t = p - hl - fl
                chunk = self._tail[t : t + n]
            out += chunk
            self._pos += len(chunk)
            n -= len(chunk)
        return bytes(out)

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        super().close()
