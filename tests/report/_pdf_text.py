"""The text of each page of a PDF that Chromium (Skia) prints, for tests; no PDF library needed.

Skia writes uncompressed object headers, Flate-compressed content streams, Type0 fonts with a
``/ToUnicode`` CMap, and text as hex glyph strings shown with ``Tj``/``TJ``. This reads exactly
that: the page tree in order, each page's fonts and content streams, and each glyph code mapped
through its font's CMap. Glyphs are joined without guessing spaces from positions, so compare
text with whitespace removed (:func:`squeeze`).
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

_OBJ = re.compile(rb"(\d+) 0 obj\s*(.*?)endobj", re.S)
_REF = rb"(\d+) 0 R"


def squeeze(text: str) -> str:
    """``text`` without whitespace, for comparing with glyph runs whose spaces are positions."""
    return re.sub(r"\s+", "", text)


def _objects(data: bytes) -> dict[int, tuple[bytes, bytes | None]]:
    out: dict[int, tuple[bytes, bytes | None]] = {}
    for num, body in _OBJ.findall(data):
        head, stream = body, None
        m = re.search(rb"stream\r?\n", body)
        if m:
            head = body[: m.start()]
            raw = body[m.end():]
            raw = raw[: raw.rfind(b"endstream")]
            # Flate data may itself end in CR/LF bytes: decompress what is there and leave the EOL before
            # `endstream` as unused data (stripping it first truncated some streams)
            stream = zlib.decompressobj().decompress(raw) if b"/FlateDecode" in head else raw.rstrip(b"\r\n")
        out[int(num)] = (head, stream)
    return out


def _cmap(stream: bytes) -> dict[bytes, str]:
    """Glyph code (raw bytes) -> text, from a ToUnicode CMap's bfchar and bfrange entries."""
    def text(hexstr: bytes) -> str:
        return bytes.fromhex(hexstr.decode()).decode("utf-16-be", errors="replace")

    out: dict[bytes, str] = {}
    for block in re.findall(rb"beginbfchar(.*?)endbfchar", stream, re.S):
        for src, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]*)>", block):
            out[bytes.fromhex(src.decode())] = text(dst)
    for block in re.findall(rb"beginbfrange(.*?)endbfrange", stream, re.S):
        for lo, hi, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*(<[0-9A-Fa-f]*>|\[[^\]]*\])", block):
            a, b, width = int(lo, 16), int(hi, 16), len(lo) // 2
            if dst.startswith(b"["):
                targets = [text(t) for t in re.findall(rb"<([0-9A-Fa-f]*)>", dst)]
            else:
                first = bytes.fromhex(dst[1:-1].decode())
                base = int.from_bytes(first, "big")
                targets = [(base + k).to_bytes(len(first), "big").decode("utf-16-be", errors="replace")
                           for k in range(b - a + 1)]
            for k, t in zip(range(a, b + 1), targets):
                out[k.to_bytes(width, "big")] = t
    return out


def _page_refs(objs, num: int) -> list[int]:
    head = objs[num][0]
    if re.search(rb"/Type\s*/Pages\b", head):
        kids = re.search(rb"/Kids\s*\[(.*?)\]", head, re.S).group(1)
        return [p for kid in re.findall(_REF, kids) for p in _page_refs(objs, int(kid))]
    return [num]


def _fonts(objs, page_head: bytes) -> dict[bytes, dict[bytes, str]]:
    resources = page_head
    ref = re.search(rb"/Resources\s+" + _REF, page_head)
    if ref:
        resources = objs[int(ref.group(1))][0]
    block = re.search(rb"/Font\s*<<(.*?)>>", resources, re.S)
    fonts = {}
    for name, num in re.findall(rb"/(\w+)\s+" + _REF, block.group(1) if block else b""):
        to_unicode = re.search(rb"/ToUnicode\s+" + _REF, objs[int(num)][0])
        fonts[name] = _cmap(objs[int(to_unicode.group(1))][1]) if to_unicode else {}
    return fonts


def _show(hexstr: bytes, cmap: dict[bytes, str]) -> str:
    raw = bytes.fromhex(re.sub(rb"\s", b"", hexstr).decode())
    width = len(next(iter(cmap))) if cmap else 1
    return "".join(cmap.get(raw[i:i + width], "") for i in range(0, len(raw), width))


def page_texts(path: str | Path) -> list[str]:
    """The text of each page, in page order (glyph runs joined with spaces between text objects)."""
    data = Path(path).read_bytes()
    objs = _objects(data)
    root = next(n for n, (head, _) in objs.items()
                if re.search(rb"/Type\s*/Pages\b", head) and b"/Parent" not in head)
    pages = []
    for num in _page_refs(objs, root):
        head = objs[num][0]
        fonts = _fonts(objs, head)
        contents = re.search(rb"/Contents\s*(\[[^\]]*\]|" + _REF + rb")", head).group(1)
        streams = b"\n".join(objs[int(n)][1] or b"" for n in re.findall(_REF, contents))
        cmap: dict[bytes, str] = {}
        parts: list[str] = []
        for tok in re.finditer(rb"/(\w+)\s+[\d.]+\s+Tf|<([0-9A-Fa-f\s]*)>\s*Tj|\[((?:[^\]])*)\]\s*TJ|\bET\b", streams):
            if tok.group(1) is not None:
                cmap = fonts.get(tok.group(1), {})
            elif tok.group(2) is not None:
                parts.append(_show(tok.group(2), cmap))
            elif tok.group(3) is not None:
                parts.extend(_show(h, cmap) for h in re.findall(rb"<([0-9A-Fa-f\s]*)>", tok.group(3)))
            else:
                parts.append(" ")
        pages.append("".join(parts))
    return pages
