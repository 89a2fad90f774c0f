"""Fetch stage: one conditional GET of one feed URL, with hard caps.

:func:`fetch` never raises for anything the network or the server can do: it
returns a :class:`~monitor.models.FetchResult` whose ``error`` is a sentence a
person can act on. The caps hold against hostile servers:

- one overall deadline (``asyncio.timeout``) around connect, redirects and
  body, because httpx timeouts are per read and a dripping server never
  trips them;
- the body is streamed raw and decompressed here with bounded ``zlib``
  calls, so neither a large body nor a gzip bomb ever holds much more than
  ``max_bytes`` in memory; the compressed bytes are capped too;
- redirects are followed here, one request per hop, so a hop's body is never
  read (httpx would read and decode it without any limit) and every hop's
  URL is checked to be http(s).
"""

from __future__ import annotations

import asyncio
import functools
import http
import ipaddress
import math
import re
import socket
import ssl
import time
import zlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx

from monitor.feedclient import FeedClient
from monitor.models import FetchResult, FetchStatus, Validators

__all__ = [
    "DEFAULT_LIMITS",
    "USER_AGENT",
    "FetchLimits",
    "fetch",
    "make_client",
    "parse_retry_after",
    "redact_url",
]


def _version() -> str:
    import monitor

    return str(getattr(monitor, "__version__", "0.1.0"))


USER_AGENT = f"ai-safety-partnership-monitor/{_version()} (feed monitor; httpx/{httpx.__version__})"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.5"
)
ACCEPT_ENCODING = "gzip, deflate"  # exactly what _BoundedDecoder can decode

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT_REDIRECTS = frozenset({301, 308})
_RETRY_LATER = frozenset({429, 503})
_GZIP_WBITS = zlib.MAX_WBITS | 16


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """Hard limits for one fetch. Checked when built: a bad value is a ``ValueError``."""

    max_bytes: int = 10 * 1024 * 1024  # cap on the body after decompression (and before)
    deadline: float = 30.0  # overall seconds per fetch, redirects and body included
    connect_timeout: float = 10.0
    read_timeout: float = 20.0  # longest silence between two reads
    max_redirects: int = 5

    def __post_init__(self) -> None:
        for name in ("deadline", "connect_timeout", "read_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"FetchLimits.{name} must be a number of seconds, got {value!r}")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(
                    f"FetchLimits.{name} must be a positive number of seconds, got {value!r}"
                )
        for name, least in (("max_bytes", 1), ("max_redirects", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                kind = "a positive" if least else "a non-negative"
                raise ValueError(f"FetchLimits.{name} must be {kind} whole number, got {value!r}")


DEFAULT_LIMITS = FetchLimits()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle costs ~25 ms of CPU: do it once per process, not per client.
    # httpx's own defaults (certifi, or SSL_CERT_FILE / SSL_CERT_DIR from the environment).
    return httpx.create_ssl_context()


def make_client(limits: FetchLimits = DEFAULT_LIMITS, *, max_connections: int = 10) -> FeedClient:
    """A :class:`~monitor.feedclient.FeedClient` set up for feeds: our headers, timeouts, pool.

    It keeps no cookies: a poll stands alone. The caller closes the client.
    """
    return FeedClient(
        timeout=httpx.Timeout(
            connect=limits.connect_timeout,
            read=limits.read_timeout,
            write=limits.read_timeout,
            pool=limits.deadline,  # waiting for a free connection counts against the deadline
        ),
        headers={"User-Agent": USER_AGENT, "Accept": ACCEPT, "Accept-Encoding": ACCEPT_ENCODING},
        max_connections=max_connections,
        verify=_tls_context(),
    )


async def fetch(
    client: FeedClient, url: str, validators: Validators, limits: FetchLimits
) -> FetchResult:
    """GET ``url`` once, conditionally, within ``limits``. Never raises for network or HTTP trouble.

    Statuses: 2xx -> OK (decoded ``body``, lower-case ``headers`` with
    ``content-location`` set to the final URL, new validators); 304 ->
    NOT_MODIFIED (the given validators, updated by any the server re-sent);
    410 -> GONE; 429/503 -> RETRY_LATER; anything else -> ERROR. ``moved_to``
    is the final URL when every redirect hop was 301/308 and the fetch
    succeeded (OK or NOT_MODIFIED). ``retry_after`` is filled whenever the
    server sent a usable Retry-After.
    """
    started = time.monotonic()
    trail = _Trail(url)
    deadline = asyncio.timeout(limits.deadline)
    try:
        first = _checked_url(url)
        async with deadline:
            result = await _follow(client, trail, first, validators, limits)
    except _Failed as exc:
        result = trail.error(exc.message, http_status=exc.http_status)
    except TimeoutError as exc:
        if deadline.expired():
            message = f"timed out after {limits.deadline:g}s (the whole request, body included)"
        else:
            message = _describe_network_error(exc, client)
        result = trail.error(message)
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        result = trail.error(_describe_network_error(exc, client))
    return replace(result, elapsed=time.monotonic() - started)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After value: delay-seconds or an HTTP-date.

    A negative delay or a date in the past gives 0. Missing, unparseable or
    non-finite values give None. A date without a zone, and a naive ``now``,
    are taken as UTC.
    """
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch(r"[+-]?\d+(?:\.\d+)?", text):
        seconds = float(text)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


_URL_IN_TEXT = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^\s/?#@]*@)?(?P<rest>[^\s?#]*)"
    r"(?P<query>\?[^\s#]*)?"
)


def is_internal_host(url: str) -> bool:
    """True for loopback, private, link-local and unspecified addresses, and ``localhost``.

    Only literal addresses and localhost names are recognised: a public name
    that resolves to a private address (DNS rebinding) is beyond this check.
    """
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host)
    except ValueError:
        try:
            # Forms the resolver accepts but ip_address does not: 127.1, 2130706433, 0x7f.1
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return False
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_reserved
    )


def redact_url(text: str) -> str:
    """Remove credentials from every URL in ``text``: the userinfo, and the query string.

    ``https://user:pw@host/feed?token=x`` becomes ``https://host/feed?…``.
    Use it on anything that may land in a log, an error or the database.
    """

    def clean(match: re.Match[str]) -> str:
        return match["scheme"] + match["rest"] + ("?…" if match["query"] else "")

    return _URL_IN_TEXT.sub(clean, text)


# -- the request loop -----------------------------------------------------------


class _Failed(Exception):
    """Internal: the fetch failed with a message for people."""

    def __init__(self, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status


@dataclass(slots=True)
class _Trail:
    """The URL asked for, and each redirect hop taken from it."""

    url: str
    hops: list[tuple[int, str]] = field(default_factory=list)  # (status, target URL)

    @property
    def current(self) -> str:
        return self.hops[-1][1] if self.hops else self.url

    def moved_to(self) -> str | None:
        if self.hops and all(status in _PERMANENT_REDIRECTS for status, _ in self.hops):
            return self.current if self.current != self.url else None
        return None

    def error(self, message: str, *, http_status: int | None = None) -> FetchResult:
        return FetchResult(
            status=FetchStatus.ERROR,
            url=self.url,
            final_url=self.current,
            http_status=http_status,
            error=_printable(redact_url(message), 300),
        )


async def _follow(
    client: FeedClient,
    trail: _Trail,
    url: httpx.URL,
    validators: Validators,
    limits: FetchLimits,
) -> FetchResult:
    # Accept-Encoding again here: whatever client we were given, we must get only what we decode.
    headers = {"Accept-Encoding": ACCEPT_ENCODING, **_conditional_headers(validators)}
    while True:
        response = await client.get(url, headers)
        try:
            location = response.headers.get("location")
            if response.status_code not in _REDIRECTS or location is None:
                return await _finish(response, trail, validators, limits)
            target = _redirect_target(trail.current, location)
        finally:
            await response.aclose()
        if len(trail.hops) >= limits.max_redirects:
            raise _Failed(_too_many_redirects(trail, target, limits.max_redirects))
        try:
            url = _checked_url(target)
        except _Failed as exc:
            raise _Failed(f"{exc.message}; the server redirected to {target}") from None
        if is_internal_host(target) and not is_internal_host(trail.current):
            # A public feed must not steer us at cloud metadata or services next to us.
            raise _Failed(
                f"refused a redirect from a public address to an internal one "
                f"({redact_url(target)})"
            )
        trail.hops.append((response.status_code, target))


def _redirect_target(current: str, location: str) -> str:
    """The absolute URL a ``Location`` points at from ``current`` (RFC 9110 10.2.2)."""
    try:
        base = httpx.URL(current)
        url = httpx.URL(location.strip())
        if url.scheme and not url.host:  # "https:/feed.xml": broken, but browsers cope
            url = url.copy_with(host=base.host)
        if url.is_relative_url:
            url = base.join(url)
        if base.fragment and not url.fragment:
            url = url.copy_with(fragment=base.fragment)
    except httpx.InvalidURL as exc:
        raise _Failed(f"redirected to an invalid or unsupported Location ({exc})") from None
    return str(url)


def _too_many_redirects(trail: _Trail, target: str, max_redirects: int) -> str:
    visited = [trail.url, *(hop_target for _, hop_target in trail.hops), target]
    first = visited.index(target)
    if first < len(visited) - 1:  # ``target`` was visited before: show one turn of the loop
        again = visited.index(target, first + 1)
        return "redirect loop: " + " -> ".join(visited[first : again + 1])
    return f"too many redirects (more than {max_redirects}), last to {target}"


async def _finish(
    response: httpx.Response, trail: _Trail, validators: Validators, limits: FetchLimits
) -> FetchResult:
    code = response.status_code
    retry_after = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
    base = FetchResult(
        status=FetchStatus.ERROR,
        url=trail.url,
        final_url=trail.current,
        http_status=code,
        retry_after=retry_after,
    )
    if code == 304:
        # A 304 has no body; reading its (empty) end lets the connection go back to the pool
        # instead of being closed, so the next GET to this host skips the connect.
        await _drain_empty(response)
        kept = Validators(
            etag=response.headers.get("etag", validators.etag),
            last_modified=response.headers.get("last-modified", validators.last_modified),
        )
        return replace(
            base, status=FetchStatus.NOT_MODIFIED, validators=kept, moved_to=trail.moved_to()
        )
    if code == 410:
        gone = f"{_status_line(response)}: the server says this feed is gone for good"
        return replace(base, status=FetchStatus.GONE, error=gone)
    if code in _RETRY_LATER:
        wait = f"; the server asked to wait {retry_after:.0f}s" if retry_after is not None else ""
        return replace(base, status=FetchStatus.RETRY_LATER, error=_status_line(response) + wait)
    if not 200 <= code < 300:
        return replace(base, error=_status_line(response))
    try:
        body = await _read_body(response, limits)
    except _Failed as exc:
        exc.http_status = code
        raise
    headers = {k.lower(): v for k, v in response.headers.items()}
    # The headers describe the body we hand on, which is decoded.
    headers.pop("content-encoding", None)
    headers.pop("content-length", None)
    # feedparser resolves relative links against content-location: no credentials in there.
    headers["content-location"] = _strip_userinfo(trail.current)
    return replace(
        base,
        status=FetchStatus.OK,
        body=body,
        headers=headers,
        validators=Validators(
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
        ),
        moved_to=trail.moved_to(),
    )


async def _drain_empty(response: httpx.Response) -> None:
    """Read the rest of a body that must be empty (304); stop at the first byte."""
    async for chunk in response.aiter_raw():
        if chunk:
            return  # a broken server sent a body: aclose() drops the connection


def _status_line(response: httpx.Response) -> str:
    try:
        reason = http.HTTPStatus(response.status_code).phrase
    except ValueError:
        reason = _printable(response.reason_phrase, 60)
    return f"HTTP {response.status_code} {reason}".rstrip()


def _conditional_headers(validators: Validators) -> dict[str, str]:
    headers: dict[str, str] = {}
    # A stored validator came from a server: only send it back if it is a legal header value.
    if validators.etag and _is_header_safe(validators.etag):
        headers["If-None-Match"] = validators.etag
    if validators.last_modified and _is_header_safe(validators.last_modified):
        headers["If-Modified-Since"] = validators.last_modified
    return headers


def _is_header_safe(value: str) -> bool:
    return value.isascii() and value.isprintable()


def _checked_url(url: str) -> httpx.URL:
    """``url`` parsed, if it is an absolute http(s) URL; else :class:`_Failed` saying why not."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise _Failed(f"not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise _Failed("not an absolute URL: it should start with https:// or http://")
    if scheme not in ("http", "https"):
        raise _Failed(
            f"unsupported URL scheme '{scheme}': only http and https feeds can be fetched"
        )
    if not parts.hostname:
        raise _Failed("the URL has no host name")
    try:
        return httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise _Failed(f"not a valid URL ({exc})") from None


def _strip_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


# -- the body -----------------------------------------------------------------------


async def _read_body(response: httpx.Response, limits: FetchLimits) -> bytes:
    coding = _content_coding(response.headers.get("content-encoding"))
    cap = _size(limits.max_bytes)
    what = "body" if coding == "identity" else f"compressed ({coding}) body"
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise _Failed(f"{what} larger than {cap} cap (the server announced {_size(int(declared))})")
    decoder = _BoundedDecoder(coding, limits.max_bytes)
    received = 0
    async for chunk in response.aiter_raw():
        received += len(chunk)
        if received > limits.max_bytes:
            raise _Failed(f"{what} larger than {cap} cap")
        decoder.feed(chunk)
    return decoder.finish()


def _content_coding(header: str | None) -> str:
    codings = [c.strip().lower() for c in (header or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return "identity"
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
        return "gzip" if codings[0] == "x-gzip" else codings[0]
    raise _Failed(
        f"the server sent Content-Encoding '{_printable(header or '', 40)}', which cannot be "
        f"decoded (the monitor asks for {ACCEPT_ENCODING} only)"
    )


class _BoundedDecoder:
    """Decode a gzip / deflate / identity body fed in chunks, never holding more than ``cap``.

    Each ``zlib`` call is told to produce at most what is left of the cap plus
    one byte, so a bomb stops the moment it crosses the cap. ``deflate``
    accepts both the zlib-wrapped form (RFC 9110) and raw deflate (what some
    servers send). A gzip body may hold several members; bytes after the end
    of the stream that are not a gzip member are ignored.
    """

    def __init__(self, coding: str, cap: int) -> None:
        self._coding = coding
        self._cap = cap
        self._out = bytearray()
        self._z: zlib._Decompress | None = None
        self._head = b""  # the first bytes of a deflate body, until we know its form
        self._after_end = False  # a new gzip member was started after the end of one
        self._fed = 0  # compressed bytes seen
        self._ignoring = False  # the rest is trailing junk
        if coding == "gzip":
            self._z = zlib.decompressobj(_GZIP_WBITS)

    def feed(self, data: bytes) -> None:
        self._fed += len(data)
        if self._coding == "identity":
            self._keep(data)
            return
        if self._z is None:  # deflate: zlib-wrapped or raw? Two bytes tell.
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, b""
            self._z = zlib.decompressobj(_deflate_wbits(data))
        self._inflate(data)

    def finish(self) -> bytes:
        if self._fed == 0:
            return b""  # an empty body stays empty, whatever its Content-Encoding claims
        if self._coding == "deflate" and self._z is None:
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            self._inflate(self._head)
        if self._z is not None and not self._z.eof and not self._after_end:
            raise _Failed(
                f"decompression failed ({self._coding}): the compressed body is cut short"
            )
        return bytes(self._out)

    def _inflate(self, data: bytes) -> None:
        z = self._z
        assert z is not None
        while data and not self._ignoring:
            if z.eof:
                if self._coding != "gzip":
                    self._ignoring = True
                    return
                z = self._z = zlib.decompressobj(_GZIP_WBITS)
                self._after_end = True
            try:
                out = z.decompress(data, self._cap - len(self._out) + 1)
            except zlib.error as exc:
                if self._after_end:  # junk after a complete gzip stream
                    self._ignoring = True
                    return
                raise _Failed(f"decompression failed ({self._coding}): {exc}") from None
            if out or z.eof:
                self._after_end = False
            self._keep(out)
            data = z.unused_data if z.eof else z.unconsumed_tail

    def _keep(self, data: bytes) -> None:
        if len(self._out) + len(data) > self._cap:
            suffix = "" if self._coding == "identity" else f" once decompressed ({self._coding})"
            raise _Failed(f"body larger than {_size(self._cap)} cap{suffix}")
        self._out += data


def _deflate_wbits(head: bytes) -> int:
    """zlib-wrapped deflate starts with a 2-byte header (RFC 1950 2.2); raw deflate does not."""
    cmf, flg = head[0], head[1]
    is_zlib = cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf << 8 | flg) % 31 == 0
    return zlib.MAX_WBITS if is_zlib else -zlib.MAX_WBITS


# -- messages -----------------------------------------------------------------------


def _describe_network_error(exc: BaseException, client: FeedClient) -> str:
    """One sentence for a transport failure: what happened, in words an operator can act on."""
    timeout = client.timeout
    if isinstance(exc, httpx.ConnectTimeout):
        return f"could not connect within {timeout.connect:g}s (connect timeout)"
    if isinstance(exc, httpx.ReadTimeout):
        return f"the server sent nothing for {timeout.read:g}s (read timeout)"
    if isinstance(exc, httpx.WriteTimeout):
        return f"could not send the request within {timeout.write:g}s (write timeout)"
    if isinstance(exc, httpx.PoolTimeout):
        return "no free connection in time: too many fetches at once for the connection pool"
    causes = _causes(exc)
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS error: certificate not accepted ({cause.verify_message})"
        if isinstance(cause, ssl.SSLError):
            reason = cause.reason.replace("_", " ").lower() if cause.reason else str(cause)
            return f"TLS error: {reason}"
    for cause in causes:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused: nothing is listening at that address and port"
        if isinstance(cause, ConnectionResetError):
            return "the server reset the connection"
        if isinstance(cause, socket.gaierror):
            return f"could not resolve the host name ({cause.strerror or cause})"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the server broke off or sent invalid HTTP: {exc}"
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return f"not a valid URL ({exc})"
    detail = str(exc) or type(exc).__name__
    return f"network error: {detail}"


def _causes(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _printable(text: str, limit: int) -> str:
    """Untrusted server text, made safe to show: printable characters only, length-capped."""
    cleaned = "".join(ch for ch in text if ch.isprintable())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _size(n: int) -> str:
    """10485760 -> "10 MB", 1536 -> "1.5 KB" (binary units, as the caps are set)."""
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"
