"""The HTTP protocol the service runs: uvicorn's httptools protocol with a limit on the request
head (the request line and headers).

httptools gathers a header that arrives in pieces by concatenating them, so its cost grows with
the square of the header's size: a 100 MB header stalled every other request for 13 s. uvicorn
has no limit of its own for httptools, so this one counts the bytes that arrive before the head
is complete and answers 431 (Request Header Fields Too Large) past MAX_HEAD_BYTES, closing the
connection before the parser has seen more than one read's worth beyond the limit.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024  # request line + headers; browsers and curl send under 8 KiB

REFUSAL = b'{"detail":"request headers: larger than the limit of %d bytes"}' % MAX_HEAD_BYTES


class HeadLimitedProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses a request head over MAX_HEAD_BYTES with 431."""

    _head_bytes = 0
    _in_body = False

    def data_received(self, data: bytes) -> None:
        if self._in_body:
            super().data_received(data)
            return
        self._head_bytes += len(data)
        super().data_received(data)
        # Still in the head after this read (a complete request resets the count): too long?
        if not self._in_body and self._head_bytes > MAX_HEAD_BYTES:
            self._refuse()

    def on_message_begin(self) -> None:
        self._in_body = False
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_body = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body, self._head_bytes = False, 0
        super().on_message_complete()

    def _refuse(self) -> None:
        if self.transport.is_closing():
            return
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(REFUSAL), REFUSAL)
        )
        self.transport.close()
