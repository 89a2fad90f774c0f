"""Parse untrusted XML (sitemaps, OPML) into an ElementTree, refusing DTDs.

No document this project reads (sitemaps, news sitemaps, OPML) needs a
document type declaration, and a DTD is how entity-expansion bombs ("billion
laughs", quadratic blow-up) and external entities get in. So any
``<!DOCTYPE`` or entity declaration is refused outright, before a single
entity is expanded; the tree is then built with the standard library's own
``TreeBuilder`` (defusedxml is not a dependency, and this is all it would do
for us here).

Element names keep ElementTree's ``{namespace}local`` form.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any
from xml.parsers import expat

__all__ = ["UnsafeXML", "XMLError", "local_name", "parse_xml"]


class XMLError(ValueError):
    """The bytes are not well-formed XML (or are refused as unsafe)."""


class UnsafeXML(XMLError):
    """The document declares a DTD or entities, which we never expand."""


def parse_xml(data: bytes) -> ET.Element:
    """Parse ``data`` into its root element; raise XMLError (or UnsafeXML) on bad input."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")

    def refuse(*_: Any) -> Any:
        raise UnsafeXML("the document declares a DTD or entities, which are not allowed")

    def start(name: str, attrs: dict[str, str]) -> None:
        builder.start(_qualified(name), {_qualified(k): v for k, v in attrs.items()})

    def end(name: str) -> None:
        builder.end(_qualified(name))

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    parser.buffer_text = True
    parser.ordered_attributes = False
    try:
        parser.Parse(data, True)
    except UnsafeXML:
        raise
    except expat.ExpatError as exc:
        raise XMLError(
            f"not well-formed XML: {expat.ErrorString(exc.code)} "
            f"(line {exc.lineno}, column {exc.offset + 1})"
        ) from None
    try:
        return builder.close()
    except AssertionError:  # TreeBuilder asserts when no element was seen
        raise XMLError("not XML: no root element") from None


def local_name(tag: str) -> str:
    """``{namespace}name`` -> ``name``."""
    return tag.rpartition("}")[2]


def _qualified(name: str) -> str:
    # expat gives "uri}local" for namespaced names; ElementTree spells it "{uri}local".
    return "{" + name if "}" in name else name
