"""The rule query language: parsing, errors and matching."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import pytest

from monitor.errors import QuerySyntaxError
from monitor.matcher import RuleMatcher
from monitor.query import ClauseTrace, compile_query, validate_list_item
from monitor.textmatch import Document, prepare_document

BODIES = {"bodies": ["AI Safety Institute", "AISI", "AI Security Institute", "safety institut*"]}


Lists = Mapping[str, Sequence[str]]


def doc(
    title: str,
    summary: str = "",
    *,
    content: str = "",
    source: str = "",
    tags: Sequence[str] = (),
    link: str | None = None,
) -> Document:
    return prepare_document(title, summary, content=content, source=source, tags=tags, link=link)


def run(
    query: str,
    title: str,
    summary: str = "",
    *,
    lists: Lists | None = None,
    source: str = "",
    tags: Sequence[str] = (),
    link: str | None = None,
) -> tuple[str, ...] | None:
    document = doc(title, summary, source=source, tags=tags, link=link)
    return compile_query(query, lists).match(document)


def hits(
    query: str,
    title: str,
    summary: str = "",
    *,
    lists: Lists | None = None,
    source: str = "",
    tags: Sequence[str] = (),
    link: str | None = None,
) -> bool:
    return run(query, title, summary, lists=lists, source=source, tags=tags, link=link) is not None


def error(query: str, lists: Lists | None = None) -> QuerySyntaxError:
    with pytest.raises(QuerySyntaxError) as info:
        compile_query(query, lists)
    assert info.value.query == query
    return info.value


class TestTerms:
    def test_whole_words_only(self) -> None:
        assert hits("safety", "AI Safety Institute")
        assert not hits("safe", "AI Safety Institute")

    def test_case_and_accent_insensitive(self) -> None:
        assert hits("securite", "Sécurité de l’IA")
        assert hits("SÉCURITÉ", "securite de l'ia")
        assert hits("kunstliche", "Künstliche Intelligenz: Abkommen unterzeichnet")
        assert hits("strasse", "Straße")

    def test_phrase_is_consecutive_words(self) -> None:
        assert hits('"AI Safety Institute"', "The AI Safety Institute said")
        assert not hits('"AI Safety Institute"', "AI Safety and Security Institute")

    def test_curly_quoted_phrase(self) -> None:
        assert hits("“AI Safety Institute”", "UK AI Safety Institute")
        assert hits("„KI Sicherheit“", "KI-Sicherheit im Fokus")

    def test_curly_apostrophe_in_query_and_text(self) -> None:
        assert hits("institute’s", "the Institute's mandate")
        assert hits("institute's", "the Institute’s mandate")
        assert hits("institute", "the Institute’s mandate")

    def test_prefix(self) -> None:
        for title in ("Partner", "new partners", "a partnership"):
            assert hits("partner*", title)
        assert not hits("partner*", "apartment")

    def test_prefix_in_phrase_last_word(self) -> None:
        assert hits('"safety institut*"', "AI Safety Institutes agree")
        assert not hits('"safety institut*"', "safety first, institutes later")

    @pytest.mark.parametrize(
        "title",
        ["Co-operation agreed", "co operation agreed", "Cooperation agreed", "co—operation agreed"],
    )
    @pytest.mark.parametrize("term", ["cooperation", "co-operation"])
    def test_hyphen_variants(self, term: str, title: str) -> None:
        assert hits(term, title)

    def test_single_word_written_as_two(self) -> None:
        assert hits("cybersecurity", "New cyber security pact")
        assert hits("OpenAI", "Open AI and Anthropic")
        assert not hits("agreement", "a greement")  # halves need two letters each

    def test_prefix_is_not_split(self) -> None:
        assert hits("cooperat*", "co-operative research")
        assert not hits("cooperat*", "co operative research")

    def test_hyphenated_bare_term_is_a_phrase(self) -> None:
        assert hits("AI-safety", "new AI safety body")
        assert hits("AI-safety", "new AI-safety body")
        assert not hits("AI-safety", "AI and safety")

    def test_abbreviations_with_dots(self) -> None:
        assert hits("U.S.", "U.S. and UK sign deal")
        assert hits("US", "U.S. and UK sign deal")
        assert hits("U.S.", "US and UK sign deal")

    def test_french(self) -> None:
        assert hits('"intelligence artificielle" accord', "Accord sur l’intelligence artificielle")
        assert hits("coopération", "La France et le Canada renforcent leur coopération")
        assert hits("cooperation", "La France et le Canada renforcent leur coopération")

    def test_german(self) -> None:
        assert hits("Absichtserklarung", "Absichtserklärung über KI-Sicherheit unterzeichnet")
        assert hits('"ki sicherheit"', "Absichtserklärung über KI-Sicherheit unterzeichnet")

    def test_japanese_phrase_without_spaces(self) -> None:
        title = "日英のAI安全研究所が協力覚書に署名"
        assert hits('"安全研究所"', title)
        assert hits("安全研究所 AND 協力", title)
        assert not hits('"安全研究"', "安全な研究")

    def test_korean_prefix_for_particles(self) -> None:
        title = "한국 AI안전연구소와 영국 협력 양해각서 체결"
        assert hits("AI안전연구소*", title)
        assert hits("양해각서", title)
        assert not hits("안전연구소", title)  # the particle 와 is part of the word

    def test_source_not_in_default_fields(self) -> None:
        assert not hits("nist", "AI news", source="NIST")
        assert hits("source:nist", "AI news", source="NIST")


class TestBoolean:
    def test_and_or_not(self) -> None:
        assert hits("uk AND us", "UK and US")
        assert not hits("uk AND france", "UK and US")
        assert hits("uk OR france", "UK and US")
        assert hits("uk AND NOT france", "UK and US")
        assert not hits("uk AND NOT us", "UK and US")

    def test_adjacent_terms_are_and(self) -> None:
        assert hits("uk us", "UK and US")
        assert not hits("uk france", "UK and US")

    def test_not_without_and_and_minus(self) -> None:
        assert not hits("uk NOT us", "UK and US")
        assert not hits("uk -us", "UK and US")
        assert hits("uk -france", "UK and US")
        assert not hits('uk -"and us"', "UK and US")

    def test_and_binds_tighter_than_or(self) -> None:
        # a OR b AND c == a OR (b AND c)
        assert hits("uk OR france AND germany", "UK news")
        assert not hits("(uk OR france) AND germany", "UK news")
        assert hits("uk OR france germany", "UK news")

    def test_not_binds_tighter_than_and(self) -> None:
        # NOT a AND b == (NOT a) AND b
        assert hits("NOT france AND uk", "UK news")
        assert not hits("NOT (uk AND news) AND uk", "UK news")

    def test_near_binds_tighter_than_and_and_or(self) -> None:
        # a AND b NEAR/0 c == a AND (b NEAR/0 c)
        assert hits("uk AND safety NEAR/0 institute", "UK: the safety institute")
        assert not hits("uk AND safety NEAR/0 institute", "UK: safety at the institute")
        assert hits("uk OR safety NEAR/0 institute", "UK: safety at the institute")

    def test_parentheses(self) -> None:
        assert hits("(uk OR france) (us OR canada)", "France and Canada")
        assert not hits("(uk OR france) (us OR canada)", "France and Germany")

    def test_double_negation_with_positive_term(self) -> None:
        assert hits("uk NOT NOT us", "UK and US")

    def test_lower_case_words_in_quotes(self) -> None:
        assert hits('uk "and" us', "UK and US")
        assert hits('"research and development"', "AI research and development")


class TestProximity:
    @pytest.mark.parametrize(("distance", "expected"), [(2, False), (3, True), (4, True)])
    def test_near_boundary(self, distance: int, expected: bool) -> None:
        # three words between "institute" and "agreement"
        title = "Institute signs a new agreement"
        assert hits(f"institute NEAR/{distance} agreement", title) is expected
        assert hits(f"agreement NEAR/{distance} institute", title) is expected

    def test_near_zero_is_adjacent(self) -> None:
        assert hits("safety NEAR/0 institute", "safety institute")
        assert hits("institute NEAR/0 safety", "safety institute")
        assert not hits("safety NEAR/0 institute", "safety and institute")

    def test_onear_is_ordered(self) -> None:
        assert hits("institute ONEAR/3 agreement", "Institute signs a new agreement")
        assert not hits("agreement ONEAR/3 institute", "Institute signs a new agreement")
        assert not hits("institute ONEAR/2 agreement", "Institute signs a new agreement")

    def test_distance_counts_from_end_of_phrase(self) -> None:
        title = "AI Safety Institute signs agreement"
        assert hits('"AI Safety Institute" NEAR/1 agreement', title)
        assert not hits('"AI Safety Institute" NEAR/0 agreement', title)

    def test_same_occurrence_does_not_count_twice(self) -> None:
        assert not hits("safety NEAR/5 safe*", "safety first")
        assert hits("safety NEAR/5 safe*", "safety first, safer later")

    def test_near_or_group(self) -> None:
        query = 'institute NEAR/2 (agreement OR partner* OR "work together")'
        assert hits(query, "Institutes to work together: institute and partners")
        assert hits(query, "The institute will work together with")
        assert not hits(query, "The institute will later on work together with")

    def test_near_never_spans_title_and_summary(self) -> None:
        assert not hits("institute NEAR/5 agreement", "New institute", "agreement signed")
        assert hits("institute NEAR/5 agreement", "New title", "institute agreement signed")

    def test_phrase_never_spans_title_and_summary(self) -> None:
        assert not hits('"safety institute"', "AI safety", "Institute opens")

    def test_near_with_fields(self) -> None:
        assert hits("title:institute NEAR/3 agreement", "Institute agreement", "x")
        assert not hits("title:institute NEAR/3 agreement", "x", "Institute agreement")
        assert hits(
            "(title:institute OR summary:institute) NEAR/3 agreement", "x", "Institute agreement"
        )

    def test_near_with_list(self) -> None:
        assert run("@bodies NEAR/3 agreement", "AISI agreement", lists=BODIES) == (
            "AISI",
            "agreement",
        )


class TestFields:
    def test_title_summary_content(self) -> None:
        d = doc("Alpha", "Beta", content="Gamma")
        assert compile_query("title:alpha").match(d)
        assert not compile_query("title:beta").match(d)
        assert compile_query("summary:beta").match(d)
        assert compile_query("content:gamma").match(d)
        assert compile_query("gamma").match(d)  # default includes content

    def test_field_with_phrase_group_and_list(self) -> None:
        assert hits('title:"safety institute"', "Safety institute")
        assert hits("title:(france OR canada)", "Canada")
        assert not hits("title:(france OR canada)", "x", "Canada")
        assert run("title:@bodies", "AISI news", lists=BODIES) == ("AISI",)
        assert run("title:@bodies", "news", "AISI", lists=BODIES) is None

    def test_field_name_is_case_insensitive(self) -> None:
        assert hits("Title:alpha", "Alpha")

    def test_tag_is_exact(self) -> None:
        assert hits("tag:gov", "x", tags=["GOV", "uk"])
        assert not hits("tag:go", "x", tags=["gov"])
        assert hits("tag:go*", "x", tags=["gov"])
        assert hits('tag:"AI Policy"', "x", tags=["ai  policy"])

    def test_domain_matches_host_and_parents(self) -> None:
        link = "https://www.gov.uk/government/news/x"
        assert hits("domain:gov.uk", "x", link=link)
        assert hits("domain:www.gov.uk", "x", link=link)
        assert not hits("domain:ov.uk", "x", link=link)
        assert not hits("domain:gov.uk", "x", link="https://gov.uk.example.com/")
        assert not hits("domain:gov.uk", "x")

    def test_link_is_substring(self) -> None:
        link = "https://www.gov.uk/Government/News/x"
        assert hits('link:"/government/news/"', "x", link=link)
        assert hits("link:gov.uk", "x", link=link)
        assert not hits("link:nist", "x", link=link)

    def test_regex_on_fields(self) -> None:
        assert hits("tag:/^ai-/", "x", tags=["AI-policy"])
        assert hits(r"domain:/\.gov$/", "x", link="https://www.nist.gov/news")
        assert hits(r"link:/news\/\d+/", "x", link="https://example.com/news/42")


class TestRegex:
    def test_regex_on_folded_text(self) -> None:
        assert hits(r"/memorand(um|a) of understanding/", "Memoranda of Understanding signed")
        assert hits(r"/securite/", "Sécurité")
        assert not hits(r"/\bsafe\b/", "safety")

    def test_regex_anchors_per_field(self) -> None:
        assert hits("/^uk/", "x", "UK news")
        assert not hits("/x uk/", "x", "UK news")

    def test_regex_reported_as_written(self) -> None:
        assert run("/mou?s?/ uk", "UK MoU") == ("/mou?s?/", "uk")


class TestLists:
    def test_any_item_matches_and_item_is_reported(self) -> None:
        assert run("@bodies", "UK AI Security Institute opens", lists=BODIES) == (
            "AI Security Institute",
        )
        assert run("@bodies", "Safety Institutes meet", lists=BODIES) == ("safety institut*",)
        assert run("@bodies", "Security news", lists=BODIES) is None

    def test_items_are_phrases(self) -> None:
        lists = {"x": ["work together"]}
        assert hits("@x", "they work together", lists=lists)
        assert not hits("@x", "together they work", lists=lists)

    def test_unknown_list_names_known_ones(self) -> None:
        err = error("uk AND @bodys", BODIES)
        assert err.position == 7
        assert "@bodys" in err.message
        assert "@bodies" in err.message

    def test_unknown_list_without_any_lists(self) -> None:
        assert "none are defined" in error("@bodies").message

    def test_bad_item_reported_at_reference(self) -> None:
        err = error("uk @x", {"x": ['"quoted"']})
        assert err.position == 3
        assert "quoted" in err.message

    def test_empty_list(self) -> None:
        assert error("@x", {"x": []}).position == 0


class TestValidateListItem:
    @pytest.mark.parametrize(
        "item",
        [
            "AISI",
            "AI Safety Institute",
            "safety institut*",
            "U.S.",
            "co-operation",
            "AI안전연구소*",
            "安全研究所",
            "research and development",
        ],
    )
    def test_valid(self, item: str) -> None:
        validate_list_item(item)

    @pytest.mark.parametrize(
        ("item", "position"),
        [
            ("", 0),
            ("  ", 0),
            ('"AISI"', 0),
            ("AISI (UK)", 5),
            ("part*ner", 4),
            ("*", 0),
            ("...", 0),
            ("a OR b/", 6),
        ],
    )
    def test_invalid(self, item: str, position: int) -> None:
        with pytest.raises(QuerySyntaxError) as info:
            validate_list_item(item)
        assert info.value.position == position


class TestMatchedTerms:
    def test_query_order_and_dedup(self) -> None:
        query = '(agreement OR uk) AND (uk OR "work together") AND NOT france'
        assert run(query, "UK agreement to work together") == ("agreement", "uk", "work together")

    def test_only_terms_that_fired(self) -> None:
        assert run("uk OR france OR us", "US and UK") == ("uk", "us")

    def test_not_terms_are_never_reported(self) -> None:
        assert run("uk -france", "UK") == ("uk",)

    def test_terms_as_written(self) -> None:
        assert run("MoU partner* “AI Safety”", "AI safety partners sign MOU") == (
            "MoU",
            "partner*",
            "AI Safety",
        )

    def test_near_reports_the_pair(self) -> None:
        query = "(uk OR us) NEAR/1 (agreement OR deal)"
        assert run(query, "UK deal, then much later an agreement with the US") == ("uk", "deal")


class TestSyntaxErrors:
    @pytest.mark.parametrize(
        ("query", "position", "needle"),
        [
            ("", 0, "empty query"),
            ("   ", 0, "empty query"),
            ("(uk OR us", 0, "never closed"),
            ("uk AND (us OR (fr)", 7, "never closed"),
            ("uk)", 2, "no matching"),
            ('uk "AI safety', 3, "unterminated quote"),
            ("uk AND", 3, "'AND' needs a term after it"),
            ("OR uk", 0, "'OR' needs a term before it"),
            ("uk AND OR us", 7, "'OR' needs a term before it"),
            ("(uk OR )", 4, "'OR' needs a term after it"),
            ("uk NOT", 3, "'NOT' needs a term after it"),
            ("uk NEAR/5", 3, "needs a term after it"),
            ("uk NEAR/x us", 8, "whole number"),
            ("uk NEAR us", 7, "distance"),
            ("uk NEAR/5x us", 9, "space"),
            ("uk and us", 3, "AND"),
            ("uk or us", 3, "OR"),
            ("uk Not us", 3, "NOT"),
            ("uk near/5 us", 3, "capitals"),
            ("titel:uk", 0, "unknown field"),
            ("title: uk", 6, "no space"),
            ("title:-uk", 6, "after 'title:'"),
            ("title:(summary:uk)", 7, "one field"),
            ("/[a-/", 1, "invalid regular expression"),
            ("uk /a)/", 5, "unbalanced parenthesis"),
            ("uk /abc", 3, "unterminated /regex/"),
            ("uk //", 3, "empty /regex/"),
            ("part*ner", 4, "can only end a word"),
            ('"safety* institute"', 7, "can only end a word"),
            ("uk *", 3, "letter or digit before"),
            ("uk - us", 3, "'-'"),
            ("uk + us", 3, "unexpected character"),
            ("uk ()", 3, "empty parentheses"),
            ('uk ""', 3, "empty phrase"),
            ("uk ...", 3, "no letters or digits"),
            ("@", 0, "list name"),
            ("uk NEAR/3 us NEAR/3 fr", 13, "chained"),
            ("(uk AND us) NEAR/3 fr", 1, "AND, NOT or NEAR"),
            ("uk NEAR/3 (us OR (fr AND de))", 18, "AND, NOT or NEAR"),
            ("uk NEAR/3 (us OR NOT fr)", 17, "each side of OR"),
            ("uk NEAR/3 /us/", 10, "/regex/"),
            ("tag:uk NEAR/3 us", 4, "not tag:"),
            ("title:uk NEAR/3 summary:us", 9, "different fields"),
            ("domain:gov*", 7, "drop the '*'"),
        ],
    )
    def test_error_position_and_advice(self, query: str, position: int, needle: str) -> None:
        err = error(query)
        assert err.position == position, err
        assert needle in err.message

    def test_unknown_field_lists_known_ones(self) -> None:
        assert "title, summary, content, source, tag, link, domain" in error("foo:x").message

    @pytest.mark.parametrize(
        "query", ["NOT uk", "-uk", "NOT uk AND NOT us", "NOT (uk OR us)", "NOT NOT uk"]
    )
    def test_not_only_query_rejected(self, query: str) -> None:
        err = error(query)
        assert err.message.startswith("a query needs at least one term that must be present")
        assert err.position == 0

    def test_or_with_a_not_only_side_rejected(self) -> None:
        err = error("uk OR NOT us")
        assert err.position == 6
        assert "each side of OR" in err.message

    def test_str_shows_one_based_position_and_pointer(self) -> None:
        assert str(error("uk)")).endswith("at position 3: uk⟨here⟩)")


class TestRealistic:
    QUERY = (
        "@bodies NEAR/15 (partner* OR memorandum OR MoU OR collaborat* OR agreement OR "
        '"work together") AND NOT (appoint* OR resign*)'
    )

    def test_partnership_matches(self) -> None:
        title = (
            "UK and US AI Safety Institutes sign memorandum of understanding to "
            "collaborate on AI model testing"
        )
        assert run(self.QUERY, title, lists=BODIES) == (
            "safety institut*",
            "memorandum",
            "collaborat*",
        )

    def test_appointment_does_not_match(self) -> None:
        assert run(self.QUERY, "UK AI Safety Institute appoints new director", lists=BODIES) is None

    def test_compiled_query_keeps_text(self) -> None:
        assert compile_query(self.QUERY, BODIES).text == self.QUERY


class TestDocs:
    """The examples in docs/query-language.md stay true."""

    DOC = Path(__file__).resolve().parent.parent / "docs" / "query-language.md"
    LISTS: ClassVar[Lists] = {**BODIES, "partnership_words": ["partner*", "MoU"]}

    def blocks(self, language: str) -> list[str]:
        text = self.DOC.read_text(encoding="utf-8")
        found = re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)
        return [line for block in found for line in block.splitlines() if line.strip()]

    def test_example_queries_compile(self) -> None:
        queries = self.blocks("query")
        assert len(queries) >= 10
        for query in queries:
            compile_query(query, self.LISTS)

    def test_example_errors_are_the_real_messages(self) -> None:
        lines = self.blocks("text")
        assert len(lines) >= 5
        for line in lines:
            query = line.rsplit(": ", 1)[1].replace("⟨here⟩", "")
            assert str(error(query, self.LISTS)) == line


class TestTrace:
    """CompiledQuery.trace: every clause evaluated, agreeing with match()."""

    def trace(self, query: str, title: str, lists: Lists | None = None) -> ClauseTrace:
        return compile_query(query, lists).trace(doc(title))

    def test_tree_mirrors_the_query_as_written(self) -> None:
        got = self.trace('title:"AI Safety" AND (partner* OR MoU) -appoint*', "AI Safety partners")
        assert (got.kind, got.fired, got.terms) == ("and", True, ("AI Safety", "partner*"))
        phrase, group, exclusion = got.children
        assert (phrase.text, phrase.kind, phrase.fired) == ('title:"AI Safety"', "phrase", True)
        assert (group.text, group.kind) == ("(partner* OR MoU)", "or")
        assert [(c.text, c.kind, c.fired) for c in group.children] == [
            ("partner*", "prefix", True),
            ("MoU", "term", False),
        ]
        assert (exclusion.text, exclusion.kind, exclusion.fired) == ("-appoint*", "not", True)
        assert exclusion.children[0].fired is False

    def test_no_short_circuit_after_a_failed_branch(self) -> None:
        got = self.trace("memorandum AND safety AND partner*", "safety partnership")
        assert not got.fired and got.terms == ()
        assert [c.fired for c in got.children] == [False, True, True]
        assert got.children[2].terms == ("partner*",)

    def test_list_shows_its_items(self) -> None:
        got = self.trace("@bodies", "AISI and the AI Safety Institutes", BODIES)
        assert (got.text, got.kind, got.terms) == (
            "@bodies",
            "list",
            ("AISI", "safety institut*"),
        )
        assert [(c.text, c.kind, c.fired) for c in got.children] == [
            ("AI Safety Institute", "item", False),
            ("AISI", "item", True),
            ("AI Security Institute", "item", False),
            ("safety institut*", "item", True),
        ]

    def test_near_sides_report_presence(self) -> None:
        got = self.trace("AISI NEAR/1 (agreement OR MoU)", "AISI signs a new research agreement")
        assert (got.kind, got.fired) == ("near", False)
        left, right = got.children
        assert (left.text, left.fired, right.text, right.fired) == (
            "AISI",
            True,
            "(agreement OR MoU)",
            True,
        )
        assert self.trace("AISI ONEAR/5 MoU", "MoU with AISI").kind == "onear"

    def test_regex_and_single_item_list(self) -> None:
        got = self.trace("/memorand(um|a)/ OR @one", "memoranda signed", {"one": ["accord"]})
        assert [(c.kind, c.fired) for c in got.children] == [("regex", True), ("list", False)]
        assert got.terms == ("/memorand(um|a)/",)


class TestRuleMatcher:
    """RuleMatcher gives exactly what each query's match() gives, just faster."""

    QUERIES = (
        "cooperation AND safety",
        "partner* NEAR/3 @bodies",
        "tag:gov AND /agree/",  # nothing to anchor on: always evaluated
        '"AI Safety Institute" -appoint*',
        "title:(MoU OR memorandum) AND NOT opinion",
    )

    def check(self, title: str, summary: str = "", tags: Sequence[str] = ()) -> list[int]:
        queries = [compile_query(q, BODIES) for q in self.QUERIES]
        matcher = RuleMatcher(queries)
        document = doc(title, summary, tags=tags)
        expected = [(i, t) for i, q in enumerate(queries) if (t := q.match(document)) is not None]
        assert matcher.match(document) == expected
        return [i for i, _ in expected]

    def test_split_and_joined_words_are_candidates(self) -> None:
        assert self.check("Co operation on AI safety") == [0]
        assert self.check("Co-operation on AI safety") == [0]

    def test_prefixes_lists_and_exclusions(self) -> None:
        assert self.check("AISI partnership with the AI Safety Institute") == [1, 3]
        assert self.check("AI Safety Institute appoints director") == []

    def test_unanchored_query_runs_on_every_document(self) -> None:
        matcher = RuleMatcher([compile_query(q, BODIES) for q in self.QUERIES])
        assert matcher.unanchored == 1
        assert self.check("Nothing to see", "they agreed", tags=["gov"]) == [2]

    def test_field_limited_query(self) -> None:
        assert self.check("MoU signed") == [4]
        assert self.check("Signed", "an MoU") == []

    def test_only_limits_the_queries(self) -> None:
        matcher = RuleMatcher([compile_query(q, BODIES) for q in self.QUERIES])
        document = doc("MoU on cooperation and safety")
        assert [i for i, _ in matcher.match(document)] == [0, 4]
        assert [i for i, _ in matcher.match(document, only={4})] == [4]

    def test_documents_without_candidate_words_skip_every_anchored_query(self) -> None:
        matcher = RuleMatcher([compile_query(q, BODIES) for q in self.QUERIES])
        assert matcher.candidates(doc("Weather report for Tuesday")) == [2]
