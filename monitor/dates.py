"""Dates as web pages print them, turned into UTC datetimes.

Feeds carry machine dates; news listing pages print dates for people: "12
March 2026", "Mar 12, 2026", "12.03.2026", "2026年3月12日", "令和8年3月12日",
"2 days ago", "3時間前", "vor 2 Tagen". :func:`parse_date` reads those (ISO
8601 and RFC 2822 too) without guessing from a locale: every language it
knows is tried on every string. Anything it cannot read gives None, and the
entry then gets the first-seen time, like a feed entry without a date.

Pure: the poll time ``now`` and the page's time zone are parameters.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.models import DateOrder

__all__ = ["parse_date", "zone"]

_MAX_TEXT = 200  # longer strings are prose, not a date

_MONTH_NAMES: dict[int, tuple[str, ...]] = {
    1: ("january", "jan", "janvier", "janv", "januar", "jänner", "jän", "enero", "ene",
        "gennaio", "gen", "janeiro", "januari"),
    2: ("february", "feb", "février", "fevrier", "févr", "fevr", "februar", "febrero",
        "febbraio", "fevereiro", "fev", "februari"),
    3: ("march", "mar", "mars", "märz", "marz", "mär", "marzo", "março", "marco", "maart",
        "mrt"),
    4: ("april", "apr", "avril", "avr", "abril", "abr", "aprile"),
    5: ("may", "mai", "mayo", "maggio", "mag", "maio", "mei"),
    6: ("june", "jun", "juin", "juni", "junio", "giugno", "giu", "junho"),
    7: ("july", "jul", "juillet", "juil", "juli", "julio", "luglio", "lug", "julho"),
    # Not the Spanish/Italian abbreviations "ago", "set", "out": English words.
    8: ("august", "aug", "août", "aout", "agosto", "augustus"),
    9: ("september", "sep", "sept", "septembre", "septiembre", "setiembre", "settembre",
        "setembro"),
    10: ("october", "oct", "octobre", "oktober", "okt", "octubre", "ottobre", "ott",
         "outubro"),
    11: ("november", "nov", "novembre", "noviembre", "novembro"),
    12: ("december", "dec", "décembre", "decembre", "déc", "dezember", "dez", "diciembre",
         "dic", "dicembre", "dezembro"),
}  # fmt: skip
_MONTHS = {name: number for number, names in _MONTH_NAMES.items() for name in names}

# Relative dates: "<n> <unit> ago" in the languages official news pages use.
_UNITS = {
    "second": timedelta(seconds=1), "minute": timedelta(minutes=1), "min": timedelta(minutes=1),
    "hour": timedelta(hours=1), "hr": timedelta(hours=1), "day": timedelta(days=1),
    "week": timedelta(weeks=1), "month": timedelta(days=30), "year": timedelta(days=365),
    # fr / de / es
    "seconde": timedelta(seconds=1), "heure": timedelta(hours=1), "jour": timedelta(days=1),
    "semaine": timedelta(weeks=1), "mois": timedelta(days=30), "an": timedelta(days=365),
    "année": timedelta(days=365), "sekunde": timedelta(seconds=1),
    "stunde": timedelta(hours=1), "tag": timedelta(days=1),
    "woche": timedelta(weeks=1), "monat": timedelta(days=30), "jahr": timedelta(days=365),
    "segundo": timedelta(seconds=1), "minuto": timedelta(minutes=1), "hora": timedelta(hours=1),
    "día": timedelta(days=1), "dia": timedelta(days=1), "semana": timedelta(weeks=1),
    "mes": timedelta(days=30), "año": timedelta(days=365),
    # ja / zh / ko (no plural, no spaces)
    "秒": timedelta(seconds=1), "分": timedelta(minutes=1), "分钟": timedelta(minutes=1),
    "分鐘": timedelta(minutes=1), "時間": timedelta(hours=1), "小时": timedelta(hours=1),
    "小時": timedelta(hours=1), "日": timedelta(days=1), "天": timedelta(days=1),
    "週間": timedelta(weeks=1), "周": timedelta(weeks=1), "週": timedelta(weeks=1),
    "か月": timedelta(days=30), "ヶ月": timedelta(days=30), "ヵ月": timedelta(days=30),
    "个月": timedelta(days=30), "個月": timedelta(days=30), "年": timedelta(days=365),
    "초": timedelta(seconds=1), "분": timedelta(minutes=1), "시간": timedelta(hours=1),
    "일": timedelta(days=1), "주": timedelta(weeks=1), "개월": timedelta(days=30),
    "년": timedelta(days=365),
}  # fmt: skip
_WORD_NUMBERS = {"a": 1, "an": 1, "one": 1, "un": 1, "une": 1, "ein": 1, "eine": 1,
                 "einem": 1, "einer": 1, "una": 1}  # fmt: skip
_PLURAL_ENDINGS = ("", "s", "n", "en", "e", "es")  # days, Stunden, Tagen, Woche, meses
_N = r"(\d+|an?|one|une?|ein(?:e[mr]?)?|una)"
_LATIN_UNIT = r"([a-zäéíñ]+)"
_RELATIVE = [
    re.compile(rf"^{_N}\s+{_LATIN_UNIT}\s+ago$"),  # en: 2 days ago
    re.compile(rf"^il y a\s+{_N}\s+{_LATIN_UNIT}$"),  # fr: il y a 2 jours
    re.compile(rf"^vor\s+{_N}\s+{_LATIN_UNIT}$"),  # de: vor 2 Tagen
    re.compile(rf"^hace\s+{_N}\s+{_LATIN_UNIT}$"),  # es: hace 2 días
    re.compile(
        r"^(\d+)\s*(秒|分钟|分鐘|分|時間|小时|小時|日|天|週間|周|週|か月|ヶ月|ヵ月|个月|個月|年)\s*前$"
    ),
    re.compile(r"^(\d+)\s*(초|분|시간|일|주|개월|년)\s*전$"),
]
_DAY_WORDS = {
    0: ("today", "just now", "now", "aujourd'hui", "heute", "hoy", "oggi", "hoje", "vandaag",
        "今日", "本日", "今天", "오늘", "たった今"),
    1: ("yesterday", "hier", "gestern", "ayer", "ieri", "ontem", "gisteren", "昨日", "昨天",
        "어제"),
}  # fmt: skip

# 2026年3月12日, 2026年03月12日 10時30分, 令和8年3月12日, 2026년 3월 12일
_ERAS = {"令和": 2018, "平成": 1988, "昭和": 1925}  # year 1 of 令和 is 2019
_CJK_DATE = re.compile(
    r"(?:(令和|平成|昭和)\s*(\d{1,2}|元)|(\d{4}))\s*[年년]\s*(\d{1,2})\s*[月월]\s*(\d{1,2})\s*[日일]?"
)
_CJK_TIME = re.compile(r"(\d{1,2})\s*[時시:]\s*(\d{1,2})\s*[分분]?")
_NUMERIC = re.compile(r"(?<!\d)(\d{1,4})\s*([./-])\s*(\d{1,2})\s*\2\s*(\d{1,4})(?!\d)")
_KOREAN_DOTTED = re.compile(r"(?<!\d)(\d{4})\.\s*(\d{1,2})\.\s*(\d{1,2})\.?")
# A clock time, optionally am/pm and a zone right after it: "10:30", "3.15 pm" is not one.
_TIME = re.compile(
    r"(?<![\d.])(\d{1,2})[:h](\d{2})(?::(\d{2}))?(?:\.\d+)?\s*(a\.?m\.?|p\.?m\.?)?(?!\d)"
    r"(?:\s*(?:(utc|gmt|z)\b)?\s*(?:([+-])(\d{2}):?(\d{2})(?!\d))?)"
)
_WORD = re.compile(r"[^\W\d_]+")
_INT = re.compile(r"(?<!\d)(\d{1,4})(?:st|nd|rd|th|er|e|\.)?(?!\d)")


def zone(name: str | None) -> tzinfo:
    """The ``tzinfo`` for an IANA name (None: UTC). Raises ValueError for an unknown name."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(
            f"unknown time zone '{name}'; use an IANA name such as Asia/Tokyo"
        ) from exc


def parse_date(
    text: str, now: datetime, *, tz: tzinfo = UTC, order: DateOrder = "dmy"
) -> datetime | None:
    """Read a date as a web page prints it; return it in UTC, or None.

    ``now`` (timezone-aware) anchors relative dates ("2 days ago",
    "yesterday") and a day and month without a year (the latest such date
    not after ``now``). ``tz`` is the page's zone for dates printed without
    one. ``order`` settles all-numeric dates: ``dmy`` reads 03/04/2026 as
    3 April, ``mdy`` as March 4; a four-digit first number is always
    year-month-day.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    cleaned = " ".join(unicodedata.normalize("NFKC", text).split())
    if not cleaned or len(cleaned) > _MAX_TEXT:
        return None
    for reader in (_iso, _rfc2822):
        found = reader(cleaned)
        if found is not None:
            return _utc(found, tz)
    lowered = cleaned.casefold()
    relative = _relative(lowered, now.astimezone(tz))
    if relative is not None:
        return relative.astimezone(UTC)
    return _human(lowered, now.astimezone(tz), tz, order)


def _utc(value: datetime, tz: tzinfo) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


def _iso(text: str) -> datetime | None:
    if not re.match(r"^\d{4}-\d{2}-\d{2}", text):
        return None
    try:
        return datetime.fromisoformat(text.replace(" ", "T", 1) if len(text) > 10 else text)
    except ValueError:
        return None


def _rfc2822(text: str) -> datetime | None:
    if not re.search(r"\d{1,2} [A-Za-z]{3} \d{4} \d{2}:\d{2}", text):
        return None
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


def _relative(text: str, now: datetime) -> datetime | None:
    text = text.strip(" .")
    for days, words in _DAY_WORDS.items():
        if text in words:
            return now - timedelta(days=days)
    for pattern in _RELATIVE:
        found = pattern.match(text)
        if found is None:
            continue
        amount, unit = found.group(1), found.group(2)
        count = int(amount) if amount.isdigit() else _WORD_NUMBERS.get(amount)
        step = next(
            (
                _UNITS[unit.removesuffix(end)]
                for end in _PLURAL_ENDINGS
                if unit.endswith(end) and unit.removesuffix(end) in _UNITS
            ),
            None,
        )
        if count is not None and step is not None:
            return now - count * step
    return None


def _human(text: str, now: datetime, tz: tzinfo, order: DateOrder) -> datetime | None:
    """Dates with month names, CJK dates and numeric dates, with an optional time and offset."""
    day: date | None = None
    cjk = _CJK_DATE.search(text)
    if cjk is not None:
        era, era_year, year = cjk.group(1), cjk.group(2), cjk.group(3)
        full_year = int(year) if year else _ERAS[era] + (1 if era_year == "元" else int(era_year))
        day = _date(full_year, int(cjk.group(4)), int(cjk.group(5)))
        clock = _CJK_TIME.search(text, cjk.end())
        hm = (int(clock.group(1)), int(clock.group(2)), 0) if clock else None
        return _combine(day, hm, None, tz)
    hms, offset, text = _time(text)
    dotted = _KOREAN_DOTTED.search(text)
    numeric = _NUMERIC.search(text)
    if dotted is not None:
        day = _date(int(dotted.group(1)), int(dotted.group(2)), int(dotted.group(3)))
    elif numeric is not None:
        day = _numeric(numeric.group(1), numeric.group(3), numeric.group(4), order)
    else:
        day = _named(text, now)
    return _combine(day, hms, offset, tz)


def _combine(
    day: date | None, hms: tuple[int, int, int] | None, offset: tzinfo | None, tz: tzinfo
) -> datetime | None:
    if day is None:
        return None
    hour, minute, second = hms or (0, 0, 0)
    try:
        value = datetime(day.year, day.month, day.day, hour, minute, second)
    except ValueError:
        return None
    return value.replace(tzinfo=offset or tz).astimezone(UTC)


def _time(text: str) -> tuple[tuple[int, int, int] | None, tzinfo | None, str]:
    """The first clock time in ``text``, the zone printed after it, and the text without them."""
    found = _TIME.search(text)
    if found is None:
        return None, None, text
    hour, minute, second = int(found.group(1)), int(found.group(2)), int(found.group(3) or 0)
    meridiem = (found.group(4) or "").replace(".", "")
    if meridiem == "pm" and hour < 12:
        hour += 12
    elif meridiem == "am" and hour == 12:
        hour = 0
    if hour > 23 or minute > 59 or second > 59:
        return None, None, text
    offset: tzinfo | None = UTC if found.group(5) else None
    if found.group(6):
        minutes = int(found.group(7)) * 60 + int(found.group(8))
        if minutes <= 18 * 60:
            offset = timezone((-1 if found.group(6) == "-" else 1) * timedelta(minutes=minutes))
    return (hour, minute, second), offset, text[: found.start()] + " " + text[found.end() :]


def _numeric(first: str, second: str, third: str, order: DateOrder) -> date | None:
    a, b, c = int(first), int(second), int(third)
    if len(first) == 4 or order == "ymd":
        return _date(_year(a), b, c)
    year = _year(c)
    return _date(year, b, a) if order == "dmy" else _date(year, a, b)


def _named(text: str, now: datetime) -> date | None:
    """'12 March 2026', 'March 12th, 2026', '12. März 2026', 'Mar 12' (year inferred)."""
    month = next(
        (_MONTHS[w.rstrip(".")] for w in _WORD.findall(text) if w.rstrip(".") in _MONTHS), None
    )
    if month is None:
        return None
    numbers = _INT.findall(text)
    years = [int(n) for n in numbers if len(n) == 4]
    days = [int(n) for n in numbers if len(n) <= 2 and 1 <= int(n) <= 31]
    if not days:
        return None
    if years:
        return _date(years[0], month, days[0])
    # No year printed ("12 Mar"): the latest such day that is not in the future.
    for year in (now.year, now.year - 1):
        candidate = _date(year, month, days[0])
        if candidate is not None and candidate <= now.date() + timedelta(days=1):
            return candidate
    return None


def _year(value: int) -> int:
    return value + 2000 if value < 100 else value


def _date(year: int, month: int, day: int) -> date | None:
    if not 1970 <= year <= 2200:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None
