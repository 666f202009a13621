"""Draw the web client's app icons (web/static/icons/icon-192.png, icon-512.png): a map pin in
white on the brand blue, as plain PNGs written with zlib (no image library needed).

    uv run python scripts/make_field_icons.py
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

BLUE = (31, 111, 235)
WHITE = (255, 255, 255)
OUT = Path(__file__).resolve().parent.parent / "web" / "static" / "icons"


def _pixel(x: float, y: float) -> tuple[int, int, int]:
    """Colour at (x, y) in a unit square: a pin (circle head, tapering point, hole)."""
    cx, cy, r = 0.5, 0.42, 0.2
    d = math.hypot(x - cx, y - cy)
    if d < r * 0.42:
        return BLUE
    if d < r:
        return WHITE
    # The point: a triangle from the head's sides down to (0.5, 0.8).
    if cy < y < 0.8:
        half = r * 0.9 * (0.8 - y) / (0.8 - cy)
        if abs(x - cx) < half:
            return WHITE
    return BLUE


def png(size: int) -> bytes:
    """The icon as PNG bytes, ``size`` × ``size`` pixels, RGB, 2×2 supersampled."""
    rows = bytearray()
    for j in range(size):
        rows.append(0)
        for i in range(size):
            samples = [
                _pixel((i + dx) / size, (j + dy) / size)
                for dx in (0.25, 0.75)
                for dy in (0.25, 0.75)
            ]
            rows.extend(sum(s[c] for s in samples) // 4 for c in range(3))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


def main() -> None:
    """Write both sizes."""
    OUT.mkdir(parents=True, exist_ok=True)
    for size in (192, 512):
        (OUT / f"icon-{size}.png").write_bytes(png(size))
        print(f"wrote {OUT / f'icon-{size}.png'}")


if __name__ == "__main__":
    main()
