"""Content-addressed file storage on the local disk.

A file is streamed into ``root/tmp`` while its SHA-256 and size are computed, then moved
(atomically, same file system) to ``root/ab/cd/<sha256>`` where ``abcd`` are the first four hex
digits of the hash. The same bytes uploaded twice are stored once: the second temp file is
dropped. The storage key is the relative path with forward slashes; :meth:`FileStorage.path_of`
accepts nothing else, so a key from the database can never point outside ``root``.

Deleting is left to the caller on purpose: with deduplication a file may back several rows, so
it may only go when no row refers to its key any more (a retention job's business).

Blocking file calls run in worker threads (``asyncio.to_thread``); writes are batched to about
1 MiB so a large upload does not cost one thread hop per small network chunk. A process killed
mid-upload can leave a file in ``root/tmp``; anything there older than a day is garbage.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import pathlib
import re
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import BinaryIO

from backend.documents.sniff import HEAD_SIZE
from backend.lib.errors import InvalidInput

_KEY = re.compile(r"[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}")
_WRITE_BATCH = 1024 * 1024
DIR_MODE = 0o750
FILE_MODE = 0o640


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file now in the storage."""

    key: str
    """Relative path with forward slashes: ``ab/cd/<sha256>``."""
    sha256: str
    """Lower-case hex digest of the content."""
    size: int
    """Size in bytes (never 0)."""
    head: bytes
    """The first :data:`~backend.documents.sniff.HEAD_SIZE` bytes, to sniff the type."""


def key_for(sha256: str) -> str:
    """The storage key of content with this SHA-256 hex digest."""
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


class FileStorage:
    """Files under one root directory, addressed by their SHA-256."""

    def __init__(self, root: pathlib.Path) -> None:
        """Use ``root`` (created on first save if missing)."""
        self.root = root
        self.tmp = root / "tmp"

    def path_of(self, key: str) -> pathlib.Path:
        """The absolute path of a stored file; ``ValueError`` if ``key`` is not a storage key."""
        if not _KEY.fullmatch(key) or key[:2] + key[3:5] != key[6:10]:
            raise ValueError(f"not a storage key: {key!r}")
        return self.root / key

    async def save(
        self,
        chunks: AsyncIterable[bytes],
        *,
        max_bytes: int,
        check: Callable[[bytes], object] | None = None,
    ) -> StoredFile:
        """Store a stream of bytes; ``InvalidInput`` on ``file`` if empty or over ``max_bytes``.

        ``check(head)`` runs on the first bytes before the file is moved into place; whatever
        it raises aborts the save and leaves nothing stored (e.g. a refused content type).

        The temp file is removed whenever the save does not complete (too large, empty, the
        client went away, the task was cancelled).
        """
        # Two quick metadata calls, made here rather than in a thread so that a cancellation
        # cannot strike between creating the temp file and knowing its name.
        _make_dirs(self.tmp)
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="up-")
        digest = hashlib.sha256()
        size = 0
        head = bytearray()
        pending: list[bytes] = []
        pending_size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in chunks:
                    if not chunk:
                        continue
                    size += len(chunk)
                    if size > max_bytes:
                        raise InvalidInput.on("file", f"larger than {max_bytes} bytes")
                    digest.update(chunk)
                    if len(head) < HEAD_SIZE:
                        head += chunk[: HEAD_SIZE - len(head)]
                    pending.append(chunk)
                    pending_size += len(chunk)
                    if pending_size >= _WRITE_BATCH:
                        await asyncio.to_thread(_write_all, out, pending)
                        pending, pending_size = [], 0
                if size == 0:
                    raise InvalidInput.on("file", "the file is empty")
                await asyncio.to_thread(_write_all, out, pending, sync=True)
            if check is not None:
                check(bytes(head))
            sha256 = digest.hexdigest()
            key = key_for(sha256)
            await asyncio.to_thread(_settle, pathlib.Path(tmp_name), self.root / key)
        except BaseException:
            # Synchronous on purpose: it must run even while the task is being cancelled.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        return StoredFile(key=key, sha256=sha256, size=size, head=bytes(head))

    async def save_bytes(self, data: bytes) -> StoredFile:
        """Store bytes already in memory (a generated PDF, ...); ``InvalidInput`` if empty."""

        async def one_chunk() -> AsyncIterator[bytes]:
            yield data

        return await self.save(one_chunk(), max_bytes=max(len(data), 1))


def _make_dirs(path: pathlib.Path) -> None:
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)


def _write_all(out: BinaryIO, chunks: list[bytes], *, sync: bool = False) -> None:
    for chunk in chunks:
        out.write(chunk)
    if sync:
        out.flush()
        os.fsync(out.fileno())


def _settle(tmp_path: pathlib.Path, final: pathlib.Path) -> None:
    """Move the temp file to its content address, or drop it if that content is stored."""
    if final.exists():
        tmp_path.unlink()
        return
    _make_dirs(final.parent)
    os.chmod(tmp_path, FILE_MODE)
    os.replace(tmp_path, final)  # atomic; a concurrent twin would have written the same bytes
