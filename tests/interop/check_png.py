"""Reads a PNG file with Python's standard library only (struct + zlib; no PIL) and prints what it holds as
JSON, for tests/report_test.ts to check that src/eval/png.ts writes files another decoder accepts.

Usage: python3 check_png.py INPUT_PATH [--pixels]

Checks the signature, every chunk's CRC-32, that IHDR comes first and IEND last, and decodes the IDAT data
(8-bit greyscale or RGB, no interlace; all five row filters). Prints
{"width", "height", "channels", "first_pixel": [...], "pixels": n, "chunks": [...]} (with --pixels, also
"data": every decoded byte as hex) and exits 1 with a message on any error.
"""

import json
import struct
import sys
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def read_png(data: bytes, with_pixels: bool = False) -> dict:
    if data[:8] != SIGNATURE:
        raise ValueError("bad signature")
    at, chunks, idat, ihdr = 8, [], b"", None
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        body = data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise ValueError(f"bad CRC in chunk {kind!r}")
        chunks.append(kind.decode("ascii"))
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        at += 12 + length
    if not chunks or chunks[0] != "IHDR" or chunks[-1] != "IEND" or ihdr is None:
        raise ValueError(f"bad chunk order {chunks}")
    width, height, depth, colour, _, _, interlace = ihdr
    if depth != 8 or colour not in (0, 2) or interlace != 0:
        raise ValueError(f"unsupported IHDR {ihdr}")
    channels = 3 if colour == 2 else 1
    raw = zlib.decompress(idat)
    stride = width * channels
    if len(raw) != (stride + 1) * height:
        raise ValueError(f"IDAT holds {len(raw)} bytes, expected {(stride + 1) * height}")
    out, prev = bytearray(), bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        row = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = row[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            row[i] = (row[i] + (0, a, b, (a + b) // 2, paeth(a, b, c))[f]) & 0xFF
        out += row
        prev = row
    result = {
        "width": width,
        "height": height,
        "channels": channels,
        "first_pixel": list(out[:channels]),
        "pixels": len(out) // channels,
        "chunks": chunks,
    }
    if with_pixels:
        result["data"] = out.hex()
    return result


def main() -> None:
    try:
        with open(sys.argv[1], "rb") as f:
            print(json.dumps(read_png(f.read(), "--pixels" in sys.argv[2:])))
    except (ValueError, IndexError, zlib.error, struct.error) as e:
        print(f"check_png: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
