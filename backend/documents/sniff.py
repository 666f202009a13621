"""Decide what an uploaded file really is, from its first bytes, and clean its name.

The client's declared ``Content-Type`` is never trusted: the type comes from magic bytes in the
first :data:`HEAD_SIZE` bytes. Only the types in :data:`ALLOWED_TYPES` are accepted.

Refused on purpose: HTML, SVG and XML (they can carry script and would run in our origin if a
browser were ever persuaded to render them), executables, archives other than office documents,
and anything we cannot recognise. Text is accepted only when it is valid UTF-8 without NUL bytes
or control characters other than tab, CR and LF, and when it does not start with ``<`` (after
whitespace and a byte order mark) and is not named like a markup file.

Office documents are ZIP containers: we read the local file headers found in the head to tell
ODF (its first entry, ``mimetype``, holds the type verbatim) from OOXML (``word/`` or ``xl/``
entries). The OOXML parts often start after the first 4 KiB, so when the head shows a ZIP with
no telling entry we fall back to the file name's extension — for the four office types only.
"""

from __future__ import annotations

import codecs
import re
import struct
import unicodedata
from typing import NamedTuple

from backend.lib.errors import InvalidInput

HEAD_SIZE = 4096
"""How many leading bytes :func:`sniff` looks at (give it fewer only for shorter files)."""

PDF = "application/pdf"
JPEG = "image/jpeg"
PNG = "image/png"
WEBP = "image/webp"
HEIC = "image/heic"
HEIF = "image/heif"
GIF = "image/gif"
TEXT = "text/plain"
CSV = "text/csv"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ODT = "application/vnd.oasis.opendocument.text"
ODS = "application/vnd.oasis.opendocument.spreadsheet"

ALLOWED_TYPES: frozenset[str] = frozenset(
    {PDF, JPEG, PNG, WEBP, HEIC, HEIF, GIF, TEXT, CSV, DOCX, XLSX, ODT, ODS}
)
"""MIME types accepted as attachments."""

_ZIP_LOCAL = b"PK\x03\x04"
_ZIP_BY_EXTENSION = {".docx": DOCX, ".xlsx": XLSX, ".odt": ODT, ".ods": ODS}
_ODF_TYPES = {ODT, ODS}
_FOREIGN_ZIP_ENTRIES = ("ppt/", "META-INF/", "AndroidManifest.xml", "classes.dex")

# ISO-BMFF brands (ISO/IEC 23008-12): HEVC-coded images are HEIC, the generic ones HEIF.
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"}
_HEIF_BRANDS = {b"mif1", b"msf1", b"heif"}
_AVIF_BRANDS = {b"avif", b"avis"}

_MARKUP_EXTENSIONS = (".html", ".htm", ".xhtml", ".xht", ".shtml", ".svg", ".svgz", ".xml")
_TEXT_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _extension(filename: str) -> str:
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip().lower()
    dot = name.rfind(".")
    return name[dot:] if dot > 0 else ""


def _sniff_isobmff(head: bytes) -> str | None:
    """HEIC/HEIF from the ``ftyp`` box: major brand, then the compatible brands."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return None
    box_size = struct.unpack(">I", head[:4])[0]
    end = min(box_size if box_size >= 16 else 16, len(head))
    major = head[8:12]
    compatible = [head[i : i + 4] for i in range(16, end - 3, 4)]
    if major in _AVIF_BRANDS:
        return None
    brands = {major, *compatible}
    if brands & _HEIC_BRANDS:
        return HEIC
    if brands & _AVIF_BRANDS:
        return None  # AVIF also lists the generic mif1 brand; we do not accept it
    return HEIF if brands & _HEIF_BRANDS else None


class _ZipEntry(NamedTuple):
    name: str
    method: int
    data: bytes
    """The bytes after the local header: the entry's data, cut to its size when that is known."""


def _zip_entries(head: bytes) -> list[_ZipEntry]:
    """The ZIP local file headers found in the head, in order."""
    entries: list[_ZipEntry] = []
    start = 0
    while (at := head.find(_ZIP_LOCAL, start)) != -1 and at + 30 <= len(head):
        flags, method = struct.unpack("<HH", head[at + 6 : at + 10])
        (size,) = struct.unpack("<I", head[at + 18 : at + 22])
        name_len, extra_len = struct.unpack("<HH", head[at + 26 : at + 30])
        name = head[at + 30 : at + 30 + name_len].decode("utf-8", "replace")
        data = head[at + 30 + name_len + extra_len :]
        if not flags & 0x08:  # sizes are in the header, not in a trailing data descriptor
            data = data[:size]
        entries.append(_ZipEntry(name, method, data))
        start = at + 4
    return entries


def _sniff_zip(head: bytes, filename: str) -> str | None:
    for entry in _zip_entries(head):
        if entry.name == "mimetype":
            # ODF: the first entry, stored uncompressed, holds the document type in ASCII.
            # Other ODF kinds (presentations, templates, ...) are not accepted.
            kind = entry.data.decode("ascii", "replace").strip()
            return kind if entry.method == 0 and kind in _ODF_TYPES else None
        if entry.name.startswith("word/"):
            return DOCX
        if entry.name.startswith("xl/"):
            return XLSX
        if entry.name.startswith(_FOREIGN_ZIP_ENTRIES):
            return None  # a presentation, a Java archive, an Android package: not ours
    return _ZIP_BY_EXTENSION.get(_extension(filename))


def _sniff_text(head: bytes, filename: str) -> str | None:
    body = head
    while body.startswith(codecs.BOM_UTF8):
        body = body[len(codecs.BOM_UTF8) :]
    if not body or b"\x00" in body:
        return None
    # A head cut at HEAD_SIZE may end inside a multi-byte character: let the decoder wait for it.
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        text = decoder.decode(body, final=len(head) < HEAD_SIZE)
    except UnicodeDecodeError:
        return None
    if _TEXT_CONTROLS.search(text):
        return None
    stripped = text.lstrip().lstrip("\ufeff").lstrip()
    if not stripped or stripped.startswith("<"):
        return None  # HTML, SVG, XML: markup can carry script
    extension = _extension(filename)
    if extension in _MARKUP_EXTENSIONS:
        return None
    return CSV if extension == ".csv" else TEXT


def sniff(head: bytes, filename: str) -> str | None:
    """The real MIME type of a file from its first bytes, or None when it is not one we accept.

    ``head`` is the first :data:`HEAD_SIZE` bytes (or the whole file if shorter); ``filename``
    only tells CSV from plain text and, for ZIP containers without a telling entry in the head,
    which office type it is.
    """
    head = head[:HEAD_SIZE]
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if len(head) >= 12 and head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return WEBP
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _sniff_isobmff(head)
    if head.startswith(_ZIP_LOCAL):
        return _sniff_zip(head, filename)
    return _sniff_text(head, filename)


def check_upload(head: bytes, filename: str) -> str:
    """The sniffed MIME type of an upload; raises ``InvalidInput`` on field ``file`` if refused."""
    if not head:
        raise InvalidInput.on("file", "the file is empty")
    kind = sniff(head, filename)
    if kind is None or kind not in ALLOWED_TYPES:
        raise InvalidInput.on(
            "file",
            "this file type is not accepted; send a PDF, an image (JPEG, PNG, WebP, HEIC, GIF), "
            "plain text or CSV, or an office document (DOCX, XLSX, ODT, ODS)",
        )
    return kind


_UNSAFE_NAME_CHARS = re.compile(r'[<>:"|?*;]')
_SPACES = re.compile(r"\s+")
MAX_FILENAME = 200


def safe_filename(name: str) -> str:
    """A file name safe to store and to send back: no directories, no control characters.

    Unicode letters (Cyrillic, ...) are kept; characters that are special in headers or on
    Windows become ``_``; leading dots and surrounding spaces go; the result is at most
    :data:`MAX_FILENAME` characters (the extension is kept when the stem is cut) and never empty.
    """
    name = unicodedata.normalize("NFC", name)
    # Control and format characters (incl. the right-to-left override used to disguise ".exe").
    name = "".join(ch for ch in name if unicodedata.category(ch) not in {"Cc", "Cf", "Cs"})
    parts = [p for p in re.split(r"[/\\]", name) if p.strip(" .")]
    name = parts[-1] if parts else ""
    name = _UNSAFE_NAME_CHARS.sub("_", name)
    name = _SPACES.sub(" ", name).strip().lstrip(".").strip()
    if len(name) > MAX_FILENAME:
        dot = name.rfind(".")
        extension = name[dot:] if 0 < dot and len(name) - dot <= 16 else ""
        name = name[: MAX_FILENAME - len(extension)].rstrip() + extension
    return name or "file"
