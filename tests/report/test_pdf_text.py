"""The tests' PDF text reader agrees with an independent PDF library on a PDF Chromium printed."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from tests.report._pdf_text import page_texts, squeeze

CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.browser
def test_page_texts_agree_with_pypdf(tmp_path):
    pypdf = pytest.importorskip("pypdf")  # not in the lock: a check of the reader where it is installed
    if not CHROMIUM.exists():
        pytest.skip("no chromium")
    import subprocess

    html = tmp_path / "p.html"
    html.write_text("<p>first page: caf\u00e9 \u2264 0.45 fi</p><p style='break-before: page'>second</p>",
                    encoding="utf-8")
    pdf = tmp_path / "p.pdf"
    subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                    f"--print-to-pdf={pdf}", html.as_uri()], check=True, capture_output=True, timeout=120)
    mine = page_texts(pdf)
    theirs = [page.extract_text() for page in pypdf.PdfReader(str(pdf)).pages]
    assert len(mine) == len(theirs) == 2
    for a, b in zip(mine, theirs):
        assert squeeze(unicodedata.normalize("NFKC", a)) == squeeze(unicodedata.normalize("NFKC", b))
    assert squeeze("first page: caf\u00e9 \u2264 0.45 fi") == squeeze(unicodedata.normalize("NFKC", mine[0]))


def test_flate_streams_that_end_in_a_line_feed_byte_are_read_whole():
    """Compressed data may itself end in 0x0a or 0x0d; only the EOL before `endstream` is not data."""
    import zlib

    from tests.report._pdf_text import _objects

    payload = next(p for p in (f"BT /F1 12 Tf <{i:04x}> Tj ET".encode() for i in range(100_000))
                   if zlib.compress(p)[-1:] in (b"\n", b"\r"))
    data = (b"%PDF-1.4\n7 0 obj\n<< /Length 99 /Filter /FlateDecode >>\nstream\n" + zlib.compress(payload)
            + b"\nendstream\nendobj\n")
    assert _objects(data)[7][1] == payload
