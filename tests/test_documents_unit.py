"""Unit tests for backend.documents: type sniffing, file names, storage, template rendering.

No database: real byte samples, a temporary directory, real WeasyPrint and pypdf.
"""

from __future__ import annotations

import base64
import hashlib
import io
import random
import re
import struct
import zipfile
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from backend.documents import sniff as s
from backend.documents.render import (
    DataOnlyFetcher,
    default_template,
    format_date,
    money,
    render_html,
    render_pdf,
    render_pdf_async,
    validate_template,
)
from backend.documents.sniff import ALLOWED_TYPES, check_upload, safe_filename, sniff
from backend.documents.storage import FileStorage
from backend.lib.errors import InvalidInput

# --- real minimal samples ---------------------------------------------------------------------


def _png(width: int = 1, height: int = 1) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height)))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


PNG = _png()
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
JPEG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffdb004300") + b"\x08" * 64
GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
GIF87 = b"GIF87a" + GIF[6:]
WEBP_BODY = b"VP8L\x0a\x00\x00\x00\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"
WEBP = b"RIFF" + struct.pack("<I", 4 + len(WEBP_BODY)) + b"WEBP" + WEBP_BODY


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\x00\x00\x00\x08mdat"


HEIC = _ftyp(b"heic", b"mif1", b"heic")
HEIC_MIF1_MAJOR = _ftyp(b"mif1", b"mif1", b"heic")
HEIF = _ftyp(b"mif1", b"mif1")
HEIF_SEQUENCE = _ftyp(b"msf1", b"msf1", b"iso8")
AVIF = _ftyp(b"avif", b"avif", b"mif1", b"miaf")
MP4 = _ftyp(b"isom", b"isom", b"iso2", b"mp41")


def _zip(entries: list[tuple[str, bytes]], *, stored_first: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, (name, data) in enumerate(entries):
            method = zipfile.ZIP_STORED if stored_first and index == 0 else zipfile.ZIP_DEFLATED
            archive.writestr(name, data, compress_type=method)
    return buffer.getvalue()


CONTENT_TYPES = b'<?xml version="1.0"?><Types xmlns="urn:x"/>'
DOCX = _zip(
    [
        ("[Content_Types].xml", CONTENT_TYPES),
        ("_rels/.rels", b"<Relationships/>"),
        ("word/document.xml", b"<w:document/>"),
    ]
)
XLSX = _zip(
    [
        ("[Content_Types].xml", CONTENT_TYPES),
        ("_rels/.rels", b"<Relationships/>"),
        ("xl/workbook.xml", b"<workbook/>"),
    ]
)


def _odf(kind: str) -> bytes:
    return _zip(
        [
            ("mimetype", kind.encode()),
            ("content.xml", b"<office:document-content/>"),
            ("META-INF/manifest.xml", b"<manifest:manifest/>"),
        ],
        stored_first=True,
    )


ODT = _odf(s.ODT)
ODS = _odf(s.ODS)
ODP = _odf("application/vnd.oasis.opendocument.presentation")
# OOXML whose first entry is too big for the telling "word/" entry to be in the first 4 KiB.
DOCX_LATE = _zip(
    [
        ("[Content_Types].xml", random.Random(7).randbytes(6000)),  # incompressible
        ("word/document.xml", b"<w:document/>"),
    ]
)
PLAIN_ZIP = _zip([("photo.jpg", JPEG), ("notes.txt", b"hello")])
JAR = _zip([("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n"), ("a/B.class", b"\xca\xfe")])
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00\x01\x00\x00\x00" + b"\x00" * 40
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 44 + b"PE\x00\x00"


@pytest.mark.parametrize(
    ("head", "filename", "expected"),
    [
        (PDF, "act.pdf", s.PDF),
        (PNG, "photo.png", s.PNG),
        (JPEG, "IMG_0001.JPG", s.JPEG),
        (GIF, "a.gif", s.GIF),
        (GIF87, "a.gif", s.GIF),
        (WEBP, "a.webp", s.WEBP),
        (HEIC, "IMG_0002.HEIC", s.HEIC),
        (HEIC_MIF1_MAJOR, "IMG_0003.heic", s.HEIC),
        (HEIF, "photo.heif", s.HEIF),
        (HEIF_SEQUENCE, "burst.heifs", s.HEIF),
        (DOCX, "Договор.docx", s.DOCX),
        (XLSX, "Смета.xlsx", s.XLSX),
        (ODT, "act.odt", s.ODT),
        (ODS, "estimate.ods", s.ODS),
        ("Замер: 1400×1200 мм\r\nЦвет: белый\n".encode(), "notes.txt", s.TEXT),
        ("Имя;Телефон\nИванова;+79171234567\n".encode(), "clients.CSV", s.CSV),
        (b"\xef\xbb\xbfwith a byte order mark\n", "bom.txt", s.TEXT),
        # The extension never decides when the content is known: content wins.
        (PNG, "invoice.pdf", s.PNG),
        (DOCX, "sheet.xlsx", s.DOCX),
        (ODT, "sheet.ods", s.ODT),
    ],
)
def test_sniff_recognises_allowed_types(head: bytes, filename: str, expected: str) -> None:
    assert expected in ALLOWED_TYPES
    assert sniff(head[: s.HEAD_SIZE], filename) == expected
    assert check_upload(head[: s.HEAD_SIZE], filename) == expected


@pytest.mark.parametrize(
    ("filename", "expected"),
    [("report.docx", s.DOCX), ("report.DOCX", s.DOCX), ("data.xlsx", s.XLSX), ("a.zip", None)],
)
def test_zip_without_a_telling_entry_in_the_head_falls_back_to_the_extension(
    filename: str, expected: str | None
) -> None:
    head = DOCX_LATE[: s.HEAD_SIZE]
    assert b"word/" not in head
    assert sniff(head, filename) == expected


@pytest.mark.parametrize(
    ("head", "filename"),
    [
        (ELF, "app"),
        (ELF, "photo.jpg"),
        (EXE, "setup.exe"),
        (EXE, "notes.txt"),
        (b"<!DOCTYPE html><html><script>alert(1)</script></html>", "page.txt"),
        (b"\xef\xbb\xbf  \r\n\t<html><body onload=alert(1)>", "invoice.txt"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "logo.svg"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "logo.png"),
        (b"plain words, but a markup name\n", "page.html"),
        (b"plain words, but a markup name\n", "logo.svg"),
        (b"text with a \x00 NUL byte\n", "a.txt"),
        (b"text with an escape \x1b[31m sequence\n", "a.txt"),
        (b"\xff\xfeU\x00T\x00F\x00-\x001\x006\x00", "utf16.txt"),
        (b"latin-1 caf\xe9 is not UTF-8\n", "a.txt"),
        (AVIF, "photo.avif"),
        (MP4, "video.heic"),
        (ODP, "slides.odt"),
        (PLAIN_ZIP, "archive.zip"),
        (JAR, "trojan.docx"),
        (b"", "empty.txt"),
        (b"   \n\t", "blank.txt"),
    ],
)
def test_sniff_refuses_everything_else(head: bytes, filename: str) -> None:
    assert sniff(head, filename) is None
    with pytest.raises(InvalidInput) as caught:
        check_upload(head, filename)
    assert caught.value.errors[0].field == "file"
    assert caught.value.status == 422


def test_sniff_accepts_text_whose_head_ends_inside_a_multibyte_character() -> None:
    text = ("a" + "Ж" * 3000).encode()  # 4096 = 1 + 2 x 2047.5: the cut splits a "Ж"
    head = text[: s.HEAD_SIZE]
    with pytest.raises(UnicodeDecodeError):
        head.decode("utf-8")
    assert sniff(head, "long.txt") == s.TEXT
    # A whole (short) file that ends in a broken character is not UTF-8.
    assert sniff("Счёт".encode()[:-1], "short.txt") is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\Windows\\system.ini", "system.ini"),
        ("C:\\Users\\Мария\\Акт выполненных работ.docx", "Акт выполненных работ.docx"),
        ("Договор №15 — Иванова М.П..pdf", "Договор №15 — Иванова М.П..pdf"),
        ("Фото 2026-11-24.jpeg", "Фото 2026-11-24.jpeg"),
        ("\x00\x1bevil\r\n.txt", "evil.txt"),
        ("invoice\u202egpj.exe", "invoicegpj.exe"),
        ('a"b<c>|d?.txt', "a_b_c__d_.txt"),
        ("   spaced    out  .txt  ", "spaced out .txt"),
        (".bashrc", "bashrc"),
        ("dir/", "dir"),
        ("", "file"),
        ("..", "file"),
        ("/", "file"),
        ("\x00\x01", "file"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_safe_filename_limits_length_and_keeps_the_extension() -> None:
    name = "Я" * 300 + ".pdf"
    cleaned = safe_filename(name)
    assert len(cleaned) == 200
    assert cleaned.endswith("Я.pdf")


# --- storage ----------------------------------------------------------------------------------


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


async def test_save_streams_hashes_and_stores_content_addressed(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path / "files")
    parts = [PNG, b"\x00" * 70_000, bytes(range(256)) * 9000, b"", b"tail"]
    data = b"".join(parts)
    stored = await storage.save(_chunks(*parts), max_bytes=10_000_000)

    digest = hashlib.sha256(data).hexdigest()
    assert stored.sha256 == digest
    assert stored.size == len(data)
    assert stored.key == f"{digest[:2]}/{digest[2:4]}/{digest}"
    assert stored.head == data[:4096]
    assert sniff(stored.head, "x.png") == s.PNG
    path = storage.path_of(stored.key)
    assert path == tmp_path / "files" / digest[:2] / digest[2:4] / digest
    assert path.read_bytes() == data
    assert not list((tmp_path / "files" / "tmp").iterdir())


async def test_save_deduplicates_identical_content(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    first = await storage.save(_chunks(b"same ", b"bytes"), max_bytes=100)
    second = await storage.save(_chunks(b"same bytes"), max_bytes=100)
    third = await storage.save_bytes(b"same bytes")
    assert first == second == third
    assert _files_under(tmp_path) == [storage.path_of(first.key)]


async def test_save_stops_reading_as_soon_as_the_limit_is_passed(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1
            yield b"x" * 1000

    with pytest.raises(InvalidInput) as caught:
        await storage.save(endless(), max_bytes=2500)
    assert caught.value.errors[0].field == "file"
    assert caught.value.errors[0].reason == "larger than 2500 bytes"
    assert pulled == 3
    assert _files_under(tmp_path) == []


async def test_save_accepts_exactly_max_bytes(tmp_path: Path) -> None:
    stored = await FileStorage(tmp_path).save(_chunks(b"12345"), max_bytes=5)
    assert stored.size == 5


async def test_save_refuses_empty_files(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    with pytest.raises(InvalidInput) as caught:
        await storage.save(_chunks(b"", b""), max_bytes=100)
    assert caught.value.errors[0].field == "file"
    with pytest.raises(InvalidInput):
        await storage.save_bytes(b"")
    assert _files_under(tmp_path) == []


async def test_a_broken_stream_leaves_no_temp_file(tmp_path: Path) -> None:
    async def disconnects() -> AsyncIterator[bytes]:
        yield b"partial upload"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await FileStorage(tmp_path).save(disconnects(), max_bytes=1000)
    assert _files_under(tmp_path) == []


@pytest.mark.parametrize(
    "key",
    [
        "../x",
        "../../etc/passwd",
        "ab/cd/../../../etc/passwd",
        "/etc/passwd",
        "ab/cd/" + "0" * 64,  # the directories do not match the hash
        "AB/CD/ABCD" + "0" * 60,  # upper case
        "ab\\cd\\abcd" + "0" * 60,
        "ab/cd/abcd" + "0" * 60 + "\n",
        "ab/cd/abcd" + "0" * 59,
        "",
    ],
)
def test_path_of_refuses_anything_but_a_storage_key(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="not a storage key"):
        FileStorage(tmp_path).path_of(key)


# --- rendering --------------------------------------------------------------------------------


ACCOUNT = "40702810462000012345"
BIC = "049205603"


def _context(**overrides: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        "deal": {
            "title": "Установка окон ПВХ",
            "number": "D-1042",
            "amount": Decimal("148500.00"),
            "currency": "RUB",
            "line_items": [
                {
                    "name": "Окно ПВХ 1400×1200",
                    "quantity": Decimal("3"),
                    "unitPrice": Decimal("42000.00"),
                    "total": Decimal("126000.00"),
                },
                {
                    "name": "Монтаж и отделка откосов",
                    "quantity": Decimal("1"),
                    "unitPrice": Decimal("22500.00"),
                    "total": Decimal("22500.00"),
                },
            ],
            "scheduled_at": datetime(2026, 12, 1, 10, 0),
        },
        "customer": {"name": "Иванова Мария Петровна", "phone": "+79171234567", "email": None},
        "site": {"address": "Казань, ул. Баумана, 15, кв. 7"},
        "organization": {
            "name": "ООО «Окна Казани»",
            "payment_details": {
                "recipient": "ООО «Окна Казани»",
                "bankName": "ПАО Сбербанк",
                "accountNumber": ACCOUNT,
                "bic": BIC,
                "taxId": "1655123456",
                "correspondentAccount": "30101810600000000603",
            },
        },
        "service": "Установка окон ПВХ",
        "generated_at": datetime(2026, 11, 24, 12, 30, tzinfo=UTC),
        "document": {"number": 17, "version": 1},
    }
    context.update(overrides)
    return context


_WHITESPACE = re.compile(r"[\s\u00a0\u2009\u202f]+")


def _norm(text: str) -> str:
    return _WHITESPACE.sub("", text)


def _pdf_text(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages)


def _pdf_image_count(pdf: bytes) -> int:
    return sum(len(page.images) for page in PdfReader(io.BytesIO(pdf)).pages)


def test_russian_invoice_pdf_carries_every_value() -> None:
    template = default_template("ru-RU")
    validate_template(template)
    pdf = render_pdf(template, _context())

    assert pdf.startswith(b"%PDF-")
    text = _norm(_pdf_text(pdf))
    for value in [
        "Счёт на оплату № 17",
        "24.11.2026",
        "Иванова Мария Петровна",
        "Казань, ул. Баумана, 15, кв. 7",
        "Установка окон ПВХ",
        "Окно ПВХ 1400×1200",
        "148 500,00 ₽",
        "126 000,00",
        "ООО «Окна Казани»",
        "ПАО Сбербанк",
        ACCOUNT,
        BIC,
        "30101810600000000603",
        "1655123456",
    ]:
        assert _norm(value) in text, value


def test_english_invoice_and_template_choice() -> None:
    assert "Счёт на оплату" in default_template("ru")
    assert "Счёт на оплату" in default_template("RU_ru")
    assert "Invoice No." in default_template("en-GB")
    assert "Invoice No." in default_template("de")
    context = _context(
        deal={**_context()["deal"], "currency": "USD", "line_items": []},
        customer={"name": "Mary Ivanova", "phone": None, "email": "mary@example.com"},
        site={"address": None},
        organization={"name": "Windows Ltd", "payment_details": {"accountNumber": ACCOUNT}},
    )
    template = default_template("en")
    validate_template(template)
    text = _norm(_pdf_text(render_pdf(template, context)))
    for value in ["Invoice No. 17", "Mary Ivanova", "mary@example.com", "$148 500.00", ACCOUNT]:
        assert _norm(value) in text, value


async def test_render_pdf_async() -> None:
    pdf = await render_pdf_async(default_template("ru"), _context())
    assert "ИвановаМарияПетровна" in _norm(_pdf_text(pdf))


def test_values_are_escaped() -> None:
    html = render_html("<p>{{ customer.name }}</p>", _context(customer={"name": "<b>x</b>"}))
    assert html == "<p>&lt;b&gt;x&lt;/b&gt;</p>"


@pytest.mark.parametrize(
    ("value", "currency", "mark", "expected"),
    [
        (Decimal("148500"), "RUB", ",", "148\u202f500,00\xa0₽"),
        (Decimal("148500"), "rub", ".", "148\u202f500.00\xa0₽"),
        (Decimal("1250.5"), "USD", ".", "$1\u202f250.50"),
        (Decimal("-1250.5"), "EUR", ".", "-€1\u202f250.50"),
        (Decimal("1250.5"), "EUR", ",", "1\u202f250,50\xa0€"),
        (Decimal("1234567.891"), "KZT", ".", "1\u202f234\u202f567.89\xa0KZT"),
        (Decimal("0.005"), "", ".", "0.01"),
        (12, "RUB", ",", "12,00\xa0₽"),
        ("99.9", "RUB", ",", "99,90\xa0₽"),
        (None, "RUB", ",", ""),
    ],
)
def test_money(value: Any, currency: str, mark: str, expected: str) -> None:
    assert money(value, currency, mark) == expected


@pytest.mark.parametrize("value", ["abc", Decimal("NaN"), True, [1]])
def test_money_refuses_non_amounts(value: Any) -> None:
    with pytest.raises(ValueError, match="money"):
        money(value, "RUB")


def test_date_filter() -> None:
    moment = datetime(2026, 11, 24, 9, 5, tzinfo=UTC)
    assert format_date(moment) == "24.11.2026"
    assert format_date(moment, "%Y-%m-%d %H:%M") == "2026-11-24 09:05"
    assert format_date(moment.date()) == "24.11.2026"
    assert format_date("2026-11-24T09:05:00+00:00") == "24.11.2026"
    assert format_date(None) == ""
    with pytest.raises(ValueError, match="date"):
        format_date("tomorrow")


def _html_error(call: Any, *args: Any) -> str:
    with pytest.raises(InvalidInput) as caught:
        call(*args)
    assert caught.value.status == 422
    assert caught.value.errors[0].field == "html"
    return caught.value.errors[0].reason


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ lipsum.__globals__['os'] }}",
        "{{ deal.line_items.append(1) }}",
        "{{ organization.payment_details.clear() }}",
        "{{ 'a' * 100000000 }}",
        "{{ 10 ** 100000000 }}",
        "{% for i in range(100001) %}{% endfor %}",
    ],
)
def test_sandbox_refuses_escapes_and_mutation(template: str) -> None:
    validate_template(template)  # compiles: the sandbox acts when the template runs
    reason = _html_error(render_html, template, _context())
    assert reason
    with pytest.raises(InvalidInput):
        render_pdf(template, _context())


def test_sandbox_reason_names_the_unsafe_attribute() -> None:
    reason = _html_error(render_html, "<p>\n{{ cycler.__init__.__globals__ }}", _context())
    assert reason.startswith("line 2: ")
    assert "__init__" in reason
    assert "unsafe" in reason


def test_templates_cannot_include_files() -> None:
    _html_error(render_html, "{% include '/etc/passwd' %}", _context())
    _html_error(render_html, "{% extends 'base.html' %}", _context())


def test_missing_variable_fails_with_its_line() -> None:
    reason = _html_error(
        render_html, "<p>{{ customer.name }}</p>\n<p>{{ customer.inn }}</p>", _context()
    )
    assert reason.startswith("line 2: ")
    assert "inn" in reason


def test_filter_errors_become_invalid_input() -> None:
    reason = _html_error(render_html, "{{ customer.name | money('RUB') }}", _context())
    assert "money" in reason


def test_syntax_error_names_the_line() -> None:
    template = "<h1>Счёт</h1>\n<p>{{ customer.name }</p>\n"
    reason = _html_error(validate_template, template)
    assert reason.startswith("line 2: ")
    assert _html_error(render_html, template, _context()) == reason
    assert _html_error(validate_template, "{% if deal.amount %}open").startswith("line 1: ")


def test_validate_template_refuses_unknown_variables() -> None:
    reason = _html_error(validate_template, "{{ custmer.name }} {{ deal.title }}")
    assert "custmer" in reason
    assert "deal" not in reason.split(";")[0]
    validate_template("{% for i in range(3) %}{{ loop.index }}{{ deal.title }}{% endfor %}")


def test_pdf_fetches_only_data_urls() -> None:
    png = base64.b64encode(_png(4, 4)).decode()
    template = (
        '<link rel="stylesheet" href="http://127.0.0.1:9/evil.css">'
        "<style>@import url(file:///etc/hostname);"
        " body { background: url(file:///etc/hostname) }</style>"
        '<p>{{ customer.name }}</p><img src="file:///etc/passwd">'
        '<img src="https://example.com/pixel.png">'
        '<img src="data:image/png;base64,' + png + '">'
    )
    fetcher = DataOnlyFetcher()
    pdf = render_pdf(template, _context(), url_fetcher=fetcher)

    assert set(fetcher.refused) == {
        "http://127.0.0.1:9/evil.css",
        "file:///etc/hostname",
        "file:///etc/passwd",
        "https://example.com/pixel.png",
    }
    assert _pdf_image_count(pdf) == 1  # only the data: image
    assert "ИвановаМарияПетровна" in _norm(_pdf_text(pdf))


def test_pdf_with_a_file_image_has_no_image_and_reads_nothing(tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(_png(8, 8))
    template = f'<p>x</p><img src="{secret.as_uri()}"><img src="secret.png">'
    fetcher = DataOnlyFetcher()
    pdf = render_pdf(template, _context(), base_url=tmp_path.as_uri() + "/", url_fetcher=fetcher)
    assert _pdf_image_count(pdf) == 0
    # Both resolve to the same URL, which WeasyPrint asks for once (it caches images by URL).
    assert fetcher.refused == [secret.as_uri()]


def test_fetcher_refuses_directly() -> None:
    fetcher = DataOnlyFetcher()
    for url in ["file:///etc/passwd", "http://169.254.169.254/latest/meta-data/", "ftp://x/y"]:
        with pytest.raises(ValueError, match="only data: URLs"):
            fetcher.fetch(url)
    response = fetcher.fetch("data:text/plain;base64,aGk=")
    assert response.read() == b"hi"
    response.close()
