"""Tests for monitor.links.canonical_link."""

from __future__ import annotations

import pytest

from monitor.links import canonical_link


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # Scheme and host are case-insensitive; the path is not.
        ("HTTPS://News.Example.COM/Path/Story", "https://news.example.com/Path/Story"),
        # Default ports go, other ports stay.
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("http://example.com:443/a", "http://example.com:443/a"),
        # Fragment and userinfo go.
        ("https://example.com/a#comments", "https://example.com/a"),
        ("https://user:secret@example.com/a", "https://example.com/a"),
        # Empty path becomes "/", other paths are left alone (trailing slash kept or not).
        ("https://example.com", "https://example.com/"),
        ("https://example.com?x=1", "https://example.com/?x=1"),
        ("https://example.com/a/", "https://example.com/a/"),
        ("https://example.com/a", "https://example.com/a"),
        # Surrounding whitespace, and tabs/newlines anywhere, are ignored.
        ("  https://example.com/a\n", "https://example.com/a"),
        ("https://exa\tmple.com/a\r\nb", "https://example.com/ab"),
        # IDNA hosts become punycode; a trailing dot on the host goes.
        ("https://bücher.example/x", "https://xn--bcher-kva.example/x"),
        ("https://example.com./x", "https://example.com/x"),
        # IPv6 literals keep their brackets.
        ("http://[2001:DB8::1]:8080/x", "http://[2001:db8::1]:8080/x"),
        # Spaces and non-ASCII in the path are %-encoded; existing escapes are not re-escaped.
        ("https://example.com/a b/café", "https://example.com/a%20b/caf%C3%A9"),
        ("https://example.com/a%20b", "https://example.com/a%20b"),
        # Characters that would break a Slack <url|label> are escaped.
        ("https://example.com/a|b>c", "https://example.com/a%7Cb%3Ec"),
    ],
)
def test_canonical_form(url: str, expected: str) -> None:
    assert canonical_link(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://example.com/s?utm_source=rss&id=42&utm_medium=feed&UTM_Campaign=x",
            "https://example.com/s?id=42",
        ),
        (
            "https://example.com/s?fbclid=1&gclid=2&mc_cid=3&mc_eid=4&igshid=5&ref_src=6"
            "&_hsenc=7&_hsmi=8&yclid=9&msclkid=10&ocid=11&cmpid=12&at_medium=13"
            "&at_campaign=14&spm=15",
            "https://example.com/s",
        ),
        # Other parameters keep their order and their exact spelling.
        (
            "https://example.com/s?b=2&a=1&utm_x=0&c=a%2Fb+c",
            "https://example.com/s?b=2&a=1&c=a%2Fb+c",
        ),
        # A parameter merely starting like a tracking name is kept.
        ("https://example.com/s?reference=1&spmx=2", "https://example.com/s?reference=1&spmx=2"),
        # Empty pieces are dropped.
        ("https://example.com/s?&a=1&&", "https://example.com/s?a=1"),
        # Parameters without a value are kept.
        ("https://example.com/s?print&utm_source", "https://example.com/s?print"),
    ],
)
def test_tracking_parameters_removed(url: str, expected: str) -> None:
    assert canonical_link(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        None,
        "",
        "   ",
        "javascript:alert(1)",
        " JavaScript:alert(1)",
        "data:text/html;base64,PHNjcmlwdD4=",
        "mailto:press@example.com",
        "ftp://example.com/file",
        "file:///etc/passwd",
        "http:///no-host",
        "https:example.com",
        "//example.com/protocol-relative-without-base",
        "relative/path",
        "http://exa mple.com/",
        "http://example.com:99999/",
        "http://example.com:port/",
        "http://[::1/",
        "http://bad_host!.com/",
    ],
)
def test_rejected(url: str | None) -> None:
    assert canonical_link(url) is None


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("/news/1", "https://Example.com/feed.xml", "https://example.com/news/1"),
        ("item?id=3", "https://example.com/feeds/main.xml", "https://example.com/feeds/item?id=3"),
        ("//cdn.example.net/a", "https://example.com/feed", "https://cdn.example.net/a"),
        # An absolute link ignores the base.
        ("https://other.example/a", "https://example.com/feed", "https://other.example/a"),
        # A base never makes a non-web link acceptable.
        ("javascript:alert(1)", "https://example.com/feed", None),
        # A relative link against a non-web base stays unacceptable.
        ("/a", "ftp://example.com/", None),
    ],
)
def test_relative_links_resolved_against_base(url: str, base: str, expected: str | None) -> None:
    assert canonical_link(url, base) == expected


def test_idempotent() -> None:
    once = canonical_link("HTTPS://Example.com:443/a b?utm_source=x&q=1#frag")
    assert once == "https://example.com/a%20b?q=1"
    assert canonical_link(once) == once


@pytest.mark.parametrize("url", ["https://example.com/\ud800", "https://exa\ud800mple.com/"])
def test_lone_surrogate_rejected(url: str) -> None:
    assert canonical_link(url) is None
