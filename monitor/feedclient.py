"""The HTTP client of polls: httpx's transports, without ``httpx.AsyncClient`` on top.

:func:`monitor.fetch.fetch` needs little of a full client: one GET at a
time, no cookies (a poll stands alone), its own redirect handling, its own
body decoding. What it does need is here: fixed headers, timeouts, the
proxy the environment names for a URL, and credentials written in a feed
URL (``https://user:secret@host/feed``) sent as HTTP Basic auth.

Going straight to ``httpx.AsyncHTTPTransport`` skips the client's per-request
merging of URLs, headers, cookies and auth, and its auth and redirect
generators: about a fifth of the CPU of a conditional GET on loopback
(``bench/cycle.py``, steady cycle). Requests, responses and errors are
httpx's own, so callers see the same exceptions as through a client.
"""

from __future__ import annotations

import base64
import ssl
import urllib.request
from collections.abc import Mapping
from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]

import httpx

__all__ = ["FeedClient", "environment_proxies"]


def _proxy_bypass(host: str, proxies: Mapping[str, str]) -> bool:
    """``no_proxy`` matching exactly as urllib does it, against the variables read at start.

    (``urllib.request.proxy_bypass`` would read the environment again.)
    """
    return bool(proxy_bypass_environment(host, proxies))


def environment_proxies() -> dict[str, str]:
    """Proxies named by the environment: ``{"http": url, "https": url, "all": url, "no": hosts}``.

    The standard ``http_proxy``, ``https_proxy``, ``all_proxy`` and
    ``no_proxy`` variables (either case), read as :mod:`urllib.request` reads
    them; a proxy given without a scheme is an HTTP proxy.
    """
    found = urllib.request.getproxies_environment()
    proxies: dict[str, str] = {}
    for scheme in ("http", "https", "all"):
        value = found.get(scheme, "").strip()
        if value:
            proxies[scheme] = value if "://" in value else f"http://{value}"
    if found.get("no", "").strip():
        proxies["no"] = found["no"]
    return proxies


class FeedClient:
    """GET requests through kept-alive connection pools: one direct, one per proxy in use.

    ``max_connections`` caps each pool. ``transport`` replaces the direct pool
    (tests pass ``httpx.MockTransport``); proxies then stay unused. With
    ``trust_env`` (the default) the proxy variables are read once, here.
    Close with :meth:`aclose` or use as an async context manager.
    """

    def __init__(
        self,
        *,
        timeout: httpx.Timeout,
        headers: Mapping[str, str] | None = None,
        max_connections: int = 10,
        verify: ssl.SSLContext | bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        trust_env: bool = True,
    ) -> None:
        if isinstance(max_connections, bool) or max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections!r}")
        self.timeout = timeout
        self._extensions = {"timeout": timeout.as_dict()}
        self._headers = dict(headers or {})
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._verify = verify
        self._direct = transport or httpx.AsyncHTTPTransport(verify=verify, limits=self._limits)
        self._proxies = environment_proxies() if trust_env and transport is None else {}
        self._via: dict[str, httpx.AsyncBaseTransport] = {}  # proxy URL -> its pool
        self._routes: dict[tuple[str, str, int | None], str | None] = {}

    @property
    def max_connections(self) -> int:
        """The most connections each pool of this client keeps open at once."""
        return int(self._limits.max_connections or 0)

    async def get(
        self, url: str | httpx.URL, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """Send ``GET url`` and return the response with its body not yet read.

        ``headers`` add to (and override) the client's. The caller reads or
        closes the response. Raises httpx's errors (``httpx.HTTPError``,
        ``httpx.InvalidURL``) as a client would.
        """
        request = httpx.Request(
            "GET",
            url,
            headers={**self._headers, **headers} if headers else self._headers,
            extensions=self._extensions,
        )
        target = request.url
        if target.userinfo:
            pair = f"{target.username}:{target.password}".encode()
            request.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return await self._transport_for(target).handle_async_request(request)

    def proxy_for(self, url: httpx.URL) -> str | None:
        """The proxy a request to ``url`` goes through, or None for a direct connection."""
        key = (url.scheme, url.host, url.port)
        if key not in self._routes:
            proxy = self._proxies.get(url.scheme) or self._proxies.get("all")
            host = f"[{url.host}]" if ":" in url.host else url.host  # IPv6, as no_proxy writes it
            host = host if url.port is None else f"{host}:{url.port}"
            if proxy and _proxy_bypass(host, self._proxies):
                proxy = None
            self._routes[key] = proxy
        return self._routes[key]

    def _transport_for(self, url: httpx.URL) -> httpx.AsyncBaseTransport:
        proxy = self.proxy_for(url) if self._proxies else None
        if proxy is None:
            return self._direct
        transport = self._via.get(proxy)
        if transport is None:
            try:
                transport = httpx.AsyncHTTPTransport(
                    verify=self._verify, limits=self._limits, proxy=httpx.Proxy(proxy)
                )
            except (ImportError, ValueError, httpx.InvalidURL) as exc:
                # A socks5:// proxy without the socksio package, an unknown scheme, a bad URL.
                message = f"cannot use the proxy the environment names: {exc}"
                raise httpx.ProxyError(message) from None
            self._via[proxy] = transport
        return transport

    async def aclose(self) -> None:
        """Close every connection of every pool."""
        await self._direct.aclose()
        for transport in self._via.values():
            await transport.aclose()

    async def __aenter__(self) -> FeedClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
