"""Canonical links: one spelling per article URL.

Feeds decorate the same article URL with tracking parameters, default ports,
upper-case hosts and fragments. A canonical form lets the dedupe stage see
that two links are one article, and keeps ``javascript:``/``data:`` links out
of Slack. Paths are left alone on purpose: ``/a`` and ``/a/`` can be different
pages on real servers.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}

# Query parameters that identify a campaign or a click, never the article.
_TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "mc_cid",
        "mc_eid",
        "igshid",
        "ref_src",
        "_hsenc",
        "_hsmi",
        "yclid",
        "msclkid",
        "ocid",
        "cmpid",
        "at_medium",
        "at_campaign",
        "spm",
    }
)
_TRACKING_PREFIXES = ("utm_",)

# A host after IDNA encoding is dot-separated DNS labels, or an IPv6 literal
# (urlsplit has removed the brackets).
_LABEL_RE = re.compile(r"[a-z0-9_-]{1,63}")
_IPV6_RE = re.compile(r"[0-9a-f:.]+")
# Browsers drop tabs and newlines anywhere in a URL (WHATWG URL standard).
_TAB_NEWLINE = str.maketrans("", "", "\t\n\r")
# ... and strip leading/trailing C0 controls and spaces.
_C0_AND_SPACE = "".join(map(chr, range(0x21)))
# Characters that may stay unescaped; everything else (spaces, non-ASCII, and
# the ``<>|`` that would break a Slack link) is %-encoded. "%" is kept so
# existing escapes are not escaped twice.
_PATH_SAFE = "/%:@!$&'()*+,;="
_QUERY_SAFE = _PATH_SAFE + "?"


def canonical_link(url: str | None, base: str | None = None) -> str | None:
    """Return the canonical http(s) form of ``url``, or None if it is not a web link.

    ``url`` is resolved against ``base`` first when it is relative. The scheme
    and host are lower-cased (IDNA hosts become punycode), default ports,
    user:password, the fragment and tracking parameters (``utm_*``, ``fbclid``
    and friends) are removed; other query parameters keep their order and
    spelling. An empty path becomes ``/``; spaces, non-ASCII and ``<>|`` in
    the path and query are %-encoded. Anything that is not http(s) with a
    host (``javascript:``, ``data:``, ``mailto:``, ``http:///x``) gives None.
    """
    if url is None:
        return None
    try:
        return _canonical(url, base)
    except ValueError:
        # urlsplit on "http://[::1", a port of 99999, a lone surrogate that
        # cannot be %-encoded (UnicodeError is a ValueError): not a usable link.
        return None


def _canonical(url: str, base: str | None) -> str | None:
    url = url.translate(_TAB_NEWLINE).strip(_C0_AND_SPACE)
    if not url:
        return None
    if base:
        url = urljoin(base.strip(_C0_AND_SPACE), url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        return None
    host = _canonical_host(parts.hostname)
    if host is None:
        return None
    netloc = f"[{host}]" if ":" in host else host
    port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = quote(parts.path, safe=_PATH_SAFE) or "/"
    query = _strip_tracking(parts.query)
    return urlunsplit((scheme, netloc, path, query, ""))


def _canonical_host(hostname: str | None) -> str | None:
    """Lower-case, punycode and validate a host name; None if it is not one."""
    if not hostname:
        return None
    host = hostname.lower().rstrip(".")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if ":" in host:
        return host if _IPV6_RE.fullmatch(host) else None
    if len(host) > 253 or not all(_LABEL_RE.fullmatch(label) for label in host.split(".")):
        return None
    return host


def _strip_tracking(query: str) -> str:
    """Drop tracking parameters; keep every other piece exactly as written."""
    kept = []
    for piece in query.split("&"):
        if not piece:
            continue
        name = unquote(piece.split("=", 1)[0]).strip().lower()
        if name in _TRACKING_PARAMS or name.startswith(_TRACKING_PREFIXES):
            continue
        kept.append(quote(piece, safe=_QUERY_SAFE))
    return "&".join(kept)
