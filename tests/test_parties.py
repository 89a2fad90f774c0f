"""The parties gazetteer: loading with file/line errors, and finding parties and agreements
in English and other languages."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from monitor.errors import ConfigErrors
from monitor.parties import Gazetteer, describe_parties, load_parties

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = load_parties(ROOT / "rules" / "parties.yaml")


def find(title: str, summary: str = "") -> tuple[str, ...]:
    return SHIPPED.find(title, summary)


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        (
            "UK AI Security Institute and Australia sign memorandum",
            ("UK AI Security Institute", "Australia"),
        ),
        # Former names map to today's name.
        ("UK AI Safety Institute partners with Canada", ("UK AI Security Institute", "Canada")),
        (
            "U.S. AI Safety Institute signs agreements with Anthropic and OpenAI",
            ("US Center for AI Standards and Innovation", "Anthropic", "OpenAI"),
        ),
        (
            "Center for AI Standards and Innovation tests models",
            ("US Center for AI Standards and Innovation",),
        ),
        # Country adjectives and acronyms.
        ("British and American officials meet", ("United Kingdom", "United States")),
        ("US, UK sign AI pact", ("United States", "United Kingdom")),
        ("EU AI Office joins the network", ("EU AI Office",)),
        (
            "International Network of AI Safety Institutes meets in San Francisco",
            ("International Network of AI Safety Institutes",),
        ),
        # A bare "AI Safety Institute" names no one: there are many.
        ("AI Safety Institute publishes report", ()),
    ],
)
def test_english_names(title: str, expected: tuple[str, ...]) -> None:
    assert find(title) == expected


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Reino Unido y Estados Unidos firman un acuerdo", ("United Kingdom", "United States")),
        ("La France et le Royaume-Uni renforcent leur coopération", ("France", "United Kingdom")),
        ("Großbritannien und USA vereinbaren Zusammenarbeit", ("United Kingdom", "United States")),
        (
            "OpenAI et Anthropic et l'institut américain de sécurité de l'IA",
            ("OpenAI", "Anthropic", "US Center for AI Standards and Innovation"),
        ),
        (
            "AI安全研究所の国際ネットワーク発足　日本など10カ国",
            ("International Network of AI Safety Institutes", "Japan"),
        ),
        (
            "Anthropic、AIセーフティ・インスティテュートと協力覚書を締結",
            ("Anthropic", "Japan AI Safety Institute"),
        ),
        (
            "AI안전연구소, 영국 AI안보연구소와 업무협약 체결",
            ("Korea AI Safety Institute", "UK AI Security Institute"),
        ),
        # Accents are ignored both ways.
        ("Etats-Unis et Royaume-Uni", ("United States", "United Kingdom")),
    ],
)
def test_non_english_names(title: str, expected: tuple[str, ...]) -> None:
    assert find(title) == expected


def test_acronyms_only_in_capitals() -> None:
    assert find("Tell us about the partnership") == ()
    assert find("The US and the uk agree") == ("United States",)
    assert find("Join us", "The US signed.") == ("United States",)


def test_first_mention_order_and_longest_name_wins() -> None:
    assert find("Australia and the UK AI Security Institute agree") == (
        "Australia",
        "UK AI Security Institute",
    )
    # Title before summary; "UK" inside the institute's name is not the country again.
    assert find("Canada joins", "with the UK AI Security Institute and the UK") == (
        "Canada",
        "UK AI Security Institute",
        "United Kingdom",
    )


@pytest.mark.parametrize(
    ("title", "summary", "kind"),
    [
        ("UK and Canada sign memorandum of understanding", "", "memorandum of understanding"),
        ("US and UK sign agreement to test AI models", "", "testing agreement"),
        ("Institutes launch network of AI safety institutes", "", "network or consortium launch"),
        ("UK and Canada to co-fund research", "", "funding"),
        ("Japan and UK agree to joint research on AI", "", "joint research programme"),
        ("Countries sign Bletchley Declaration", "", "declaration"),
        ("UK and France deepen partnership", "", "cooperation"),
        ("AI安全研究所が協力覚書に署名", "", "memorandum of understanding"),
        ("Weather service opens office", "", None),
    ],
)
def test_agreement_kinds_first_match_wins(title: str, summary: str, kind: str | None) -> None:
    assert SHIPPED.agreement(title, summary) == kind


def test_generic_and_principal() -> None:
    assert SHIPPED.is_generic("cooperation") and SHIPPED.is_generic(None)
    assert not SHIPPED.is_generic("memorandum of understanding")
    assert SHIPPED.principal("UK AI Security Institute") == "United Kingdom"
    assert SHIPPED.principal("OpenAI") == "OpenAI"
    assert SHIPPED.principal("Not in the file") == "Not in the file"


def test_describe_parties() -> None:
    assert describe_parties(["A", "B"]) == "A · B"
    assert describe_parties([str(n) for n in range(10)], limit=3) == "0 · 1 · 2 · +7 more"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "parties.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_empty_file_is_an_empty_gazetteer(tmp_path: Path) -> None:
    g = load_parties(write(tmp_path, "# nothing yet\n"))
    assert g.find("UK and US", "") == () and g.agreement("a memorandum", "") is None
    assert Gazetteer().find("UK", "") == ()


def test_errors_name_file_line_and_reason(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        parties:
          - name: Atlantis
            kind: country
          - name: Atlantis
            kind: country
          - name: Lab
            kind: company
          - name: Institute
            kind: institute
            country: Nowhere
          - name: Odd
            kind: lab
            alias: [x]
          - kind: lab
        agreements:
          - kind: memo
          - terms: [x]
          - kind: pact
            terms: [pact]
            generic: maybe
        extra: 1
        """,
    )
    with pytest.raises(ConfigErrors) as info:
        load_parties(path)
    messages = [e.describe() for e in info.value.errors]
    assert any("unknown top-level key(s) extra" in m for m in messages)
    assert f"{path}:4: party 'Atlantis': defined twice (also on line 2)" in messages
    assert any(
        m.startswith(f"{path}:6: party 'Lab': kind 'company' is not one of") for m in messages
    )
    assert f"{path}:8: party 'Institute': country 'Nowhere' is not a party in this file" in messages
    assert any(m.startswith(f"{path}:11: party 'Odd': unknown key(s) alias") for m in messages)
    assert f"{path}:14: party '#6': needs a 'name'" in messages
    assert f"{path}:16: agreement 'memo': needs at least one term" in messages
    assert f"{path}:17: agreement '#2': needs a 'kind'" in messages
    assert f"{path}:18: agreement 'pact': generic must be true or false" in messages


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors, match="file not found"):
        load_parties(tmp_path / "nope.yaml")
    with pytest.raises(ConfigErrors, match="YAML syntax error"):
        load_parties(write(tmp_path, "parties: [\n"))
    with pytest.raises(ConfigErrors, match="expected a mapping"):
        load_parties(write(tmp_path, "- a\n"))
