"""Streaming multipart uploads: file parts go straight to owner-only temporary files.

The dispatcher authenticates from the headers first, then feeds the body chunk by chunk
(inflating gzip on the fly, refusing anything past the size limit) through
python-multipart. A file part is written to a temporary file inside the store's
``assets/.incoming`` folder as it arrives, so the server holds at most one network chunk
of any upload in memory, however many arrive at once; the handler then renames the file
into place (same file system: no second copy). Other parts are small form fields,
bounded by the JSON limit.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from .validate import ApiError

#: Folder (under the assets folder) holding uploads being received.
INCOMING = ".incoming"


class Upload:
    """One received file part: its client-side name, size and a temporary file.

    The temporary file is removed by :meth:`close` unless a handler moved it into the
    asset store (:meth:`~.store.Tx.write_file`).
    """

    def __init__(self, filename: str | None, folder: Path) -> None:
        self.filename = filename
        fd, name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=folder)  # 0600
        self.path = Path(name)
        self.file: IO[bytes] = open(fd, "w+b")  # noqa: SIM115  (closed by close())
        self.size = 0
        #: digest of the content, so a retried upload can be recognised (request ids)
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.sha256.update(data)
        self.size += len(data)

    def read(self, limit: int | None = None, what: str = "file") -> bytes:
        """The whole content in memory; 413 when larger than ``limit`` (for small parts
        that are stored in the database, such as a git patch)."""
        if limit is not None and self.size > limit:
            raise ApiError(413, f"{what}: larger than {limit} bytes")
        self.file.seek(0)
        return self.file.read()

    def close(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


async def body_chunks(request: Any, limit: int) -> AsyncIterator[bytes]:
    """The request body as it arrives, gzip inflated, at most ``limit`` bytes (413)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"body: payload larger than {limit} bytes")
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip"):
        raise ApiError(400, f"Content-Encoding: unsupported {encoding!r}")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding in ("gzip", "x-gzip") else None
    size = 0
    async for chunk in request.stream():
        if inflater is not None and chunk:
            try:
                chunk = inflater.decompress(chunk, limit - size + 1)
            except zlib.error:
                raise ApiError(400, "body: invalid gzip data") from None
            if inflater.unconsumed_tail:
                raise ApiError(413, f"body: payload larger than {limit} bytes")
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"body: payload larger than {limit} bytes")
        if chunk:
            yield chunk
    if inflater is not None and size and not inflater.eof:
        raise ApiError(400, "body: invalid gzip data (truncated)")


class _Parts:
    """python-multipart callbacks collecting fields in memory and files on disk."""

    def __init__(self, folder: Path, max_field: int) -> None:
        self.folder = folder
        self.max_field = max_field
        self.files: dict[str, Upload] = {}
        self.fields: dict[str, str] = {}
        self.opened: list[Upload] = []
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self._name = ""
        self._upload: Upload | None = None
        self._data = bytearray()

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": self.header_field,
            "on_header_value": self.header_value,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
        }

    def part_begin(self) -> None:
        self._headers, self._field, self._value = {}, b"", b""
        self._upload, self._data = None, bytearray()

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field, self._value = b"", b""

    def headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if b"name" not in options:
            raise ApiError(400, "file: multipart part without a Content-Disposition name")
        self._name = options[b"name"].decode("utf-8", "replace")
        if b"filename" in options:
            self._upload = Upload(options[b"filename"].decode("utf-8", "replace"), self.folder)
            self.opened.append(self._upload)

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self._upload is not None:
            self._upload.write(data[start:end])
        else:
            self._data += data[start:end]
            if len(self._data) > self.max_field:
                raise ApiError(413, f"{self._name}: form field larger than {self.max_field} bytes")

    def part_end(self) -> None:
        if self._upload is not None:
            old = self.files.pop(self._name, None)
            if old is not None:  # a repeated part: the last one wins, as with fields
                old.close()
            self.files[self._name] = self._upload
        else:
            self.fields[self._name] = self._data.decode("utf-8", "replace")

    def close(self) -> None:
        for upload in self.opened:
            upload.close()


async def read_multipart(
    request: Any, assets_dir: Path, limit: int, max_field: int
) -> tuple[dict[str, Upload], dict[str, str], _Parts]:
    """Parse a multipart body into ``(files, fields, parts)``; ``parts.close()`` removes
    every temporary file (call it when the request is done, whatever happened)."""
    ctype = request.headers.get("content-type", "")
    if "multipart/form-data" not in ctype.lower():
        raise ApiError(400, "file: expected multipart/form-data")
    _, params = parse_options_header(ctype)
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(400, "file: malformed multipart body (no boundary)")
    folder = assets_dir / INCOMING
    if not folder.is_dir():
        folder.mkdir(mode=0o700, exist_ok=True)
    parts = _Parts(folder, max_field)
    try:
        parser = MultipartParser(boundary, parts.callbacks())  # type: ignore[arg-type]
        async for chunk in body_chunks(request, limit):
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        parts.close()
        raise ApiError(400, f"file: malformed multipart body ({exc})") from None
    except BaseException:
        parts.close()
        raise
    return parts.files, parts.fields, parts


def clear_incoming(assets_dir: Path, older_than_s: float = 6 * 3600) -> None:
    """Remove uploads left half-received by a server that stopped mid-request. Only files
    untouched for ``older_than_s``: another process may be serving the same data (the CLI's
    ``--new-admin-key`` opens the store while a server runs) and still receiving them."""
    folder = assets_dir / INCOMING
    if folder.is_dir():
        cutoff = time.time() - older_than_s
        for name in os.listdir(folder):
            path = folder / name
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except FileNotFoundError:
                pass
