"""The HTTP protocol the service runs: uvicorn's httptools protocol with a limit on the request
head (the request line and headers), time limits on reading a request, and a cap on connections.

httptools gathers a header that arrives in pieces by concatenating them, so its cost grows with
the square of the header's size: a 100 MB header stalled every other request for 13 s. uvicorn
has no limit of its own for httptools, so this one answers 431 (Request Header Fields Too Large)
past MAX_HEAD_BYTES, and closes the connection, in both of the ways a head can arrive:
  - over several reads: the bytes that arrive before the head is complete are counted, so the
    parser never sees more than one read's worth beyond the limit;
  - in one read (a 120 KB head is one read on loopback): the parser completes it in one go, so
    the head's URL, header names and values are measured once it is complete, before the
    request reaches the application.

uvicorn times out only an idle connection between two requests (timeout_keep_alive): one that
never finishes its head, or its body, is held forever, and about 21,000 of them ran the process
out of file descriptors (/health stopped answering). ``limited(limits)`` adds, with params.yaml's
``serving`` values:
  - head_timeout_s: a connection's request head must be complete this long after its first byte
    (after the connection opened, for its first request), else 408 and close (a connection that
    sent nothing is closed silently). A deadline, not an idle timer: a byte now and then does not
    keep it open.
  - body_timeout_s: likewise for the body, from the end of the head.
  - max_connections: past it, a new connection closes the one that has waited longest for a
    request head (half-sent, or idle between requests, as nginx reuses its idle keep-alive
    connections), so a flood of half-sent heads cannot keep a quick client out; if every
    connection has a request in progress, the new one gets 503 and is closed.
uvicorn's limit_concurrency does not help here: it answers 503 only once a head is complete.
Timers are armed only when a read leaves a request incomplete, so a request that arrives in one
read (nearly all) costs no timer at all.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024  # request line + headers; browsers and curl send under 8 KiB


@dataclass(frozen=True)
class Limits:
    """params.yaml's serving section: what each means is said there."""

    max_connections: int
    head_timeout_s: float
    body_timeout_s: float


def answer(status: bytes, detail: str) -> bytes:
    """A complete response that closes the connection, with a JSON body like the service's."""
    body = b'{"detail":"%s"}' % detail.encode()
    return (
        b"HTTP/1.1 %s\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (status, len(body), body)
    )


TOO_LARGE = answer(
    b"431 Request Header Fields Too Large",
    f"request headers: larger than the limit of {MAX_HEAD_BYTES} bytes",
)


class HeadLimitedProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses a request head over MAX_HEAD_BYTES with 431; with
    ``limits`` (see ``limited``), also the time limits and the connection cap."""

    limits: Limits | None = None
    # This server's connections waiting for a request head, longest first (``limited`` gives
    # each server's class its own).
    waiting: ClassVar[OrderedDict[HeadLimitedProtocol, None]] = OrderedDict()

    _head_bytes = 0
    _in_body = False
    _refused = False  # the parser may go on calling back for the rest of a refused read
    _timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limits = self.limits
        if limits is None:
            return
        if len(self.connections) > limits.max_connections:
            oldest = next(iter(self.waiting), None)
            if oldest is None:  # every connection has a request in progress
                self._close_with(answer(b"503 Service Unavailable", "too many connections"))
                return
            oldest._close_with(b"")  # it waited longest for a request head: make room
        self.waiting[self] = None
        self._arm(in_body=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.waiting.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._in_body:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_body:  # the head came, the body is still to come
            self._arm(in_body=True)
        # Still in the head after this read (a complete request resets the count): too long?
        elif self._head_bytes > MAX_HEAD_BYTES:
            self._refuse()
        elif self._head_bytes:
            self._arm(in_body=False)

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
        if self.limits:
            self._disarm()
            self.waiting.pop(self, None)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body, self._head_bytes = False, 0
        if self._refused:
            return
        self._disarm()  # the body is in; the application's own time is not limited here
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Idle until the next request (uvicorn's timeout_keep_alive closes it in the end).
        if self.limits and not self.pipeline and not self.transport.is_closing():
            self.waiting[self] = None

    def _arm(self, in_body: bool) -> None:
        """Start the time limit on the request's head or body, unless one is running."""
        if self.limits and self._timer is None:
            seconds = self.limits.body_timeout_s if in_body else self.limits.head_timeout_s
            self._timer = self.loop.call_later(seconds, self._timed_out, in_body)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self, in_body: bool) -> None:
        self._timer = None
        assert self.limits is not None  # only _arm sets a timer
        if in_body:
            limit, what = self.limits.body_timeout_s, "body"
            # The application waiting for the body sees the connection close (http.disconnect).
            silent = self.cycle is not None and self.cycle.response_started
        else:
            limit, what = self.limits.head_timeout_s, "request headers"
            silent = not self._head_bytes  # a connection that said nothing: closed without a word
        detail = f"{what}: not complete within {limit:g} s"
        self._close_with(b"" if silent else answer(b"408 Request Timeout", detail))

    def _refuse(self) -> None:
        self._refused = True
        self._close_with(TOO_LARGE)

    def _close_with(self, response: bytes) -> None:
        """Send ``response`` (if any) and close the connection."""
        self._disarm()
        self.waiting.pop(self, None)
        if self.transport.is_closing():
            return
        if response:
            self.transport.write(response)
        self.transport.close()


def limited(limits: Limits) -> type[HeadLimitedProtocol]:
    """The protocol class for one server with ``limits``."""
    return type(
        "LimitedProtocol", (HeadLimitedProtocol,), {"limits": limits, "waiting": OrderedDict()}
    )
