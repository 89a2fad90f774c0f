"""Config loading: every class of mistake gets a message naming file, rule and reason."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from monitor.app import Settings, load_config
from monitor.config import load_feeds
from monitor.durations import format_duration, parse_duration
from monitor.errors import ConfigError, ConfigErrors
from monitor.rules import load_rules
from tests.support import write_rules_dir

REPO_RULES = Path(__file__).resolve().parent.parent / "rules"
GOOD_FEED = {"name": "A", "url": "https://a.example/feed.xml"}


def feeds_errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "feeds.yaml"
    path.write_text(textwrap.dedent(text), "utf-8")
    with pytest.raises(ConfigErrors) as info:
        load_feeds(path)
    return [e.describe() for e in info.value.errors]


def rules_errors(
    tmp_path: Path,
    text: str,
    *,
    tags: set[str] | None = None,
    extra_files: dict[str, str] | None = None,
) -> list[str]:
    rules_dir = write_rules_dir(tmp_path, [GOOD_FEED], text, extra_files=extra_files)
    with pytest.raises(ConfigErrors) as info:
        load_rules(rules_dir, known_tags=tags)
    return [e.describe() for e in info.value.errors]


def test_shipped_config_is_valid_and_its_examples_pass() -> None:
    config = load_config(REPO_RULES, check_examples=True)
    assert len(config.feeds.feeds) >= 10
    assert config.rules.rules


def test_feeds_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors, match="file not found"):
        load_feeds(tmp_path / "feeds.yaml")


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    [message] = feeds_errors(tmp_path, "feeds:\n  - name: A\n    url: [unclosed\n")
    assert "feeds.yaml:" in message and "YAML syntax error" in message


def test_feeds_must_be_a_list(tmp_path: Path) -> None:
    [message] = feeds_errors(tmp_path, "feeds: https://a.example/\n")
    assert "top-level 'feeds:' list" in message


def test_each_feed_error_is_reported_with_its_line(tmp_path: Path) -> None:
    messages = feeds_errors(
        tmp_path,
        """\
        feeds:
          - name: A
            url: ftp://a.example/feed
          - url: https://b.example/
          - name: C
            url: https://c.example/
            interval: 5 minutes
          - name: D
            url: https://d.example/
            interval: 1s
          - name: E
            url: https://e.example/
            intervall: 10m
          - name: F
            url: https://f.example/
            tags: [Government Feeds]
          - name: G
            url: https://g.example/
          - name: g
            url: https://other.example/
          - name: H
            url: https://g.example/
    """,
    )
    text = "\n".join(messages)
    assert "feeds.yaml:2: feed 'A': url 'ftp://a.example/feed' must start with http" in text
    assert "feed #2 needs a non-empty 'name'" in text
    assert "feed 'C': '5 minutes' is not a duration" in text
    assert "feed 'D': interval 1s is too short" in text
    assert "feed 'E': unknown key(s) intervall" in text
    assert "feed 'F': tag 'Government Feeds'" in text
    assert "feed 'g': duplicate feed name (first used on line 17)" in text
    assert "feed 'H': same url as feed 'G'" in text
    assert len(messages) == 8


def test_rule_query_syntax_error_names_file_rule_and_position(tmp_path: Path) -> None:
    [message] = rules_errors(
        tmp_path,
        """
        rules:
          - name: broken
            query: '(partnership OR memorandum'
    """,
    )
    assert "rules.yaml" in message and "rule 'broken'" in message
    assert "query syntax error" in message and "position" in message


def test_rule_errors_are_all_reported(tmp_path: Path) -> None:
    messages = rules_errors(
        tmp_path,
        """
        rules:
          - name: one
            query: partnership
          - name: one
            query: memorandum
          - name: no-query
          - name: Bad Name
            query: x
          - name: typo
            query: x
            chanel: '#x'
          - name: tagged
            query: x
            tags: [nonexistent]
          - name: list-ref
            query: '@nowhere'
    """,
        tags={"government"},
    )
    text = "\n".join(messages)
    assert "rule 'one': duplicate rule name" in text
    assert "rule 'no-query': needs a 'query'" in text
    assert "rule #4 needs a 'name'" in text
    assert "rule 'typo': unknown key(s) chanel" in text
    assert "rule 'tagged': tag(s) nonexistent are not used by any feed" in text
    assert "rule 'list-ref'" in text and "nowhere" in text
    assert len(messages) == 6


def test_term_list_errors(tmp_path: Path) -> None:
    messages = rules_errors(
        tmp_path,
        """
        lists:
          empty: []
          ok: [partner*]
        rules:
          - name: r
            query: '@ok'
    """,
        extra_files={"more.yaml": "lists:\n  ok: [memorandum]\n"},
    )
    text = "\n".join(messages)
    assert "list 'empty': must be a non-empty list" in text
    assert "list 'ok': defined twice" in text


def test_failing_rule_example_is_reported_by_check(tmp_path: Path) -> None:
    rules_dir = write_rules_dir(
        tmp_path,
        [GOOD_FEED],
        """
        rules:
          - name: r
            query: partnership
            examples:
              match: ["A new partnership", "A memorandum"]
              no_match: ["Partnership announced"]
    """,
    )
    with pytest.raises(ConfigErrors) as info:
        load_config(rules_dir, check_examples=True)
    text = "\n".join(e.describe() for e in info.value.errors)
    assert "rule 'r': example should match but does not: 'A memorandum'" in text
    assert "rule 'r': example should not match but does: 'Partnership announced'" in text
    load_config(rules_dir)  # examples are checked by `monitor check`, not on every load


def test_no_rule_files(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "feeds.yaml").write_text("feeds:\n  - name: A\n    url: https://a/\n")
    with pytest.raises(ConfigErrors, match="no rule files"):
        load_rules(rules_dir)


def test_feeds_and_rules_errors_are_reported_together(tmp_path: Path) -> None:
    rules_dir = write_rules_dir(
        tmp_path, [{"name": "A", "url": "nope"}], "rules:\n  - name: r\n    query: 'AND'\n"
    )
    with pytest.raises(ConfigErrors) as info:
        load_config(rules_dir)
    files = {Path(e.file or "").name for e in info.value.errors}
    assert files == {"feeds.yaml", "rules.yaml"}


def test_settings_from_env() -> None:
    assert Settings.from_env({}).concurrency == 10
    settings = Settings.from_env({"MONITOR_CONCURRENCY": "4", "MONITOR_RETENTION": "30d"})
    assert settings.concurrency == 4 and settings.retention.days == 30
    with pytest.raises(ConfigError, match="MONITOR_RETENTION"):
        Settings.from_env({"MONITOR_RETENTION": "forever"})
    with pytest.raises(ConfigError, match="MONITOR_CONCURRENCY"):
        Settings.from_env({"MONITOR_CONCURRENCY": "0"})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("10m", 600), ("1h30m", 5400), ("7d", 604800), ("2w", 1209600), ("1H", 3600)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


@pytest.mark.parametrize("text", ["", "10", "ten minutes", "0m", "5x", "-3m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|zero"):
        parse_duration(text)
