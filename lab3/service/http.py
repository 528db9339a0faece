"""The HTTP protocol the service runs: uvicorn's httptools protocol with a limit on the request
head (the request line and headers).

httptools gathers a header that arrives in pieces by concatenating them, so its cost grows with
the square of the header's size: a 100 MB header stalled every other request for 13 s. uvicorn
has no limit of its own for httptools, so this one answers 431 (Request Header Fields Too Large)
past MAX_HEAD_BYTES, and closes the connection, in both of the ways a head can arrive:
  - over several reads: the bytes that arrive before the head is complete are counted, so the
    parser never sees more than one read's worth beyond the limit;
  - in one read (a 120 KB head is one read on loopback): the parser completes it in one go, so
    the head's URL, header names and values are measured once it is complete, before the
    request reaches the application.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024  # request line + headers; browsers and curl send under 8 KiB

REFUSAL = b'{"detail":"request headers: larger than the limit of %d bytes"}' % MAX_HEAD_BYTES


class HeadLimitedProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses a request head over MAX_HEAD_BYTES with 431."""

    _head_bytes = 0
    _in_body = False
    _refused = False  # the parser may go on calling back for the rest of a refused read

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
        if self._refused:
            return
        # ~1 us a request: measured on every head, since bytes read before the last request
        # completed (pipelining) are not counted above.
        size = len(self.url) + sum(len(name) + len(value) for name, value in self.headers)
        if size > MAX_HEAD_BYTES:
            self._refuse()
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body, self._head_bytes = False, 0
        if not self._refused:
            super().on_message_complete()

    def _refuse(self) -> None:
        self._refused = True
        if self.transport.is_closing():
            return
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(REFUSAL), REFUSAL)
        )
        self.transport.close()
