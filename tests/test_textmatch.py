"""Folding, tokenising and the per-field word index."""

from __future__ import annotations

import pytest

from monitor.textmatch import (
    compile_pattern,
    fold,
    index_text,
    prepare_document,
    token_groups,
    tokenize,
)


class TestFold:
    def test_case_and_accents(self) -> None:
        assert fold("Sécurité de l'IA") == "securite de l'ia"
        assert fold("KÜNSTLICHE Intelligenz") == "kunstliche intelligenz"
        assert fold("Straße") == "strasse"

    def test_curly_quotes_and_apostrophes(self) -> None:
        assert fold("“AI Safety Institute”") == '"ai safety institute"'
        assert fold("world’s ‘best’") == "world's 'best'"

    @pytest.mark.parametrize("dash", "‐‑‒–—―−")
    def test_dash_variants(self, dash: str) -> None:
        assert fold(f"co{dash}operation") == "co-operation"

    def test_unicode_spaces_and_soft_hyphen(self) -> None:
        assert fold("AI\u00a0Safety\u202fInstitute\u3000x") == "ai safety institute x"
        assert fold("co\u00adoperation") == "cooperation"

    def test_full_width_latin(self) -> None:
        assert fold("ＡＩ安全") == "ai安全"

    def test_japanese_voiced_kana_survive(self) -> None:
        # Stripping every combining mark would turn ガ into カ.
        assert fold("ガバナンス") == "ガバナンス"
        assert fold("ｶﾞﾊﾞﾅﾝｽ") == "ガバナンス"  # half-width katakana

    def test_hangul_survives(self) -> None:
        assert fold("안전연구소") == "안전연구소"


class TestTokenize:
    def test_words_and_separators(self) -> None:
        assert tokenize("UK & US: AI_safety, (testing)!") == ["uk", "us", "ai", "safety", "testing"]

    def test_possessive_dropped(self) -> None:
        assert tokenize("the Institute’s work, world's best") == [
            "the",
            "institute",
            "work",
            "world",
            "best",
        ]

    def test_other_apostrophes_split(self) -> None:
        assert tokenize("l'intelligence artificielle") == ["l", "intelligence", "artificielle"]

    def test_hyphenated_word_has_parts_and_joined_form(self) -> None:
        assert token_groups("co-operation") == [(("co", "operation"), "cooperation")]
        assert tokenize("co-operation") == ["co", "operation"]

    def test_dotted_abbreviation_joined(self) -> None:
        assert token_groups("u.s.") == [(("u", "s"), "us")]
        # Host names and numbers are not words to be joined.
        assert token_groups("gov.uk 3.5") == [(("gov", "uk"), None), (("3", "5"), None)]

    def test_ampersand(self) -> None:
        assert token_groups("at&t") == [(("at", "t"), "att")]

    def test_cjk_one_token_per_character(self) -> None:
        assert tokenize("日本のAI安全研究所") == [*"日本の", "ai", *"安全研究所"]

    def test_katakana_long_vowel_stays_in_token_stream(self) -> None:
        assert tokenize("セキュリティー") == list("セキュリティー")

    def test_hangul_words_split_from_latin(self) -> None:
        assert tokenize("AI안전연구소와 협력한다") == ["ai", "안전연구소와", "협력한다"]

    def test_hindi_vowel_signs_stay_in_words(self) -> None:
        assert tokenize("कृत्रिम बुद्धिमत्ता।") == ["कृत्रिम", "बुद्धिमत्ता"]


class TestIndex:
    def test_positions_and_joined_span(self) -> None:
        index = index_text("AI-safety co-operation, AI safety")
        assert index.spans["ai"] == [(0, 0), (4, 4)]
        assert index.spans["aisafety"] == [(0, 1)]
        assert index.spans["cooperation"] == [(2, 3)]
        assert index.length == 6

    def test_document_fields(self) -> None:
        doc = prepare_document(
            "Title",
            "Summary",
            content="Body",
            source="GOV.UK",
            tags=["AI  Policy"],
            link="https://WWW.Gov.UK./news/x",
        )
        assert doc.title.text == "title"
        assert doc.tags == ("ai policy",)
        assert doc.host == "www.gov.uk"
        assert doc.link == "https://www.gov.uk./news/x"

    def test_bad_link_has_no_host(self) -> None:
        assert prepare_document("t", "s", link="http://[::1").host == ""
        assert prepare_document("t", "s").link == ""


class TestPattern:
    @pytest.mark.parametrize(
        ("text", "span"),
        [
            ("co-operation", (1, 2)),
            ("co operation", (1, 2)),
            ("cooperation", (1, 1)),
            ("co–operation", (1, 2)),
            ("Co-Opération", (1, 2)),
        ],
    )
    @pytest.mark.parametrize("term", ["cooperation", "co-operation", "Co‑operation"])
    def test_hyphen_and_space_variants(self, text: str, span: tuple[int, int], term: str) -> None:
        index = index_text(f"international {text} deal")
        assert compile_pattern(term).spans(index) == [span]

    def test_single_word_split_needs_two_letter_halves(self) -> None:
        assert compile_pattern("agreement").spans(index_text("a greement")) == []

    def test_phrase_after_joined_word(self) -> None:
        index = index_text("A co-operation agreement")
        assert compile_pattern("cooperation agreement").spans(index) == [(1, 3)]

    def test_prefix(self) -> None:
        index = index_text("partners in a partnership")
        assert compile_pattern("partner*").spans(index) == [(0, 0), (3, 3)]
        assert compile_pattern("safety institut*").spans(index_text("AI safety institutes")) == [
            (1, 2)
        ]

    def test_cjk_phrase(self) -> None:
        index = index_text("英国AI安全研究所と日本AISIが協力")
        assert compile_pattern("安全研究所").spans(index) == [(3, 7)]

    def test_empty_pattern_matches_nothing(self) -> None:
        assert compile_pattern("...").spans(index_text("...")) == []
