"""joey.caching.conditional: the precondition evaluation routes and files share, in memory
(RFC 9110 §13), with Hypothesis properties for the round trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from joey.caching import PreconditionFailed, Validators, evaluate_preconditions
from joey.caching.conditional import etag_for, http_date, not_modified_headers
from joey.datastructures import Headers

MODIFIED = 1_700_000_000  # Tue, 14 Nov 2023 22:13:20 GMT
CURRENT = Validators(etag="v7", last_modified=MODIFIED)


def asked(**headers: str | list[str]) -> Headers:
    raw = []
    for name, value in headers.items():
        for one in value if isinstance(value, list) else [value]:
            raw.append((name.replace("_", "-").encode(), one.encode("latin-1")))
    return Headers(raw)


def date(seconds: int) -> str:
    return formatdate(seconds, usegmt=True)


# --- Validators -------------------------------------------------------------------------------

def test_validators_quote_a_bare_tag_and_keep_a_quoted_or_weak_one() -> None:
    assert Validators(etag="v7").etag == '"v7"'
    assert Validators(etag='"v7"').etag == '"v7"'
    assert Validators(etag='W/"v7"').etag == 'W/"v7"'
    assert Validators(etag='W/"v7"') != Validators(etag="v7")


@pytest.mark.parametrize("bad", ['a"b', "two words", "tab\there", "new\nline"])
def test_validators_refuse_what_is_not_an_entity_tag(bad: str) -> None:
    with pytest.raises(ValueError, match="Invalid entity tag"):
        Validators(etag=bad)


def test_validators_take_datetimes_naive_ones_as_utc() -> None:
    aware = Validators(last_modified=datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC))
    naive = Validators(last_modified=datetime(2023, 11, 14, 22, 13, 20))
    other_zone = datetime(2023, 11, 14, 23, 13, 20, 900_000,
                          tzinfo=UTC).astimezone(UTC) - timedelta(hours=1)
    assert aware.last_modified == naive.last_modified == MODIFIED
    assert Validators(last_modified=other_zone).last_modified == MODIFIED  # whole seconds
    assert aware.headers() == [(b"last-modified", b"Tue, 14 Nov 2023 22:13:20 GMT")]


# --- the order of RFC 9110 §13.2.2 ---------------------------------------------------------------

def test_no_preconditions_no_answer() -> None:
    assert evaluate_preconditions("GET", asked(), CURRENT) is None
    assert evaluate_preconditions("PUT", asked(), None) is None


def test_if_none_match_uses_weak_comparison_and_answers_304_for_get_and_head() -> None:
    for method in ("GET", "HEAD"):
        assert evaluate_preconditions(method, asked(if_none_match='"v7"'), CURRENT) == 304
        assert evaluate_preconditions(method, asked(if_none_match='W/"v7"'), CURRENT) == 304
        assert evaluate_preconditions(method, asked(if_none_match='"x", "v7"'), CURRENT) == 304
        assert evaluate_preconditions(method, asked(if_none_match=["\"x\"", '"v7"']),
                                      CURRENT) == 304
        assert evaluate_preconditions(method, asked(if_none_match="*"), CURRENT) == 304
        assert evaluate_preconditions(method, asked(if_none_match='"v8"'), CURRENT) is None
    weak = Validators(etag='W/"v7"')
    assert evaluate_preconditions("GET", asked(if_none_match='"v7"'), weak) == 304


def test_if_none_match_on_an_unsafe_method_is_412() -> None:
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert evaluate_preconditions(method, asked(if_none_match='"v7"'), CURRENT) == 412
        assert evaluate_preconditions(method, asked(if_none_match="*"), CURRENT) == 412


def test_if_none_match_star_holds_for_a_resource_that_does_not_exist() -> None:
    # "create only if absent": PUT with If-None-Match: * goes ahead when nothing is there
    assert evaluate_preconditions("PUT", asked(if_none_match="*"), None) is None
    assert evaluate_preconditions("GET", asked(if_none_match="*"), None) is None


def test_if_match_uses_strong_comparison() -> None:
    assert evaluate_preconditions("PUT", asked(if_match='"v7"'), CURRENT) is None
    assert evaluate_preconditions("PUT", asked(if_match='"x", "v7"'), CURRENT) is None
    assert evaluate_preconditions("PUT", asked(if_match="*"), CURRENT) is None
    assert evaluate_preconditions("PUT", asked(if_match='"v8"'), CURRENT) == 412
    assert evaluate_preconditions("PUT", asked(if_match='W/"v7"'), CURRENT) == 412
    weak = Validators(etag='W/"v7"')
    assert evaluate_preconditions("PUT", asked(if_match='W/"v7"'), weak) == 412
    assert evaluate_preconditions("PUT", asked(if_match='"v7"'), weak) == 412
    no_tag = Validators(last_modified=MODIFIED)
    assert evaluate_preconditions("PUT", asked(if_match='"v7"'), no_tag) == 412
    assert evaluate_preconditions("PUT", asked(if_match="*"), no_tag) is None


def test_if_match_fails_for_a_resource_that_does_not_exist() -> None:
    assert evaluate_preconditions("PUT", asked(if_match="*"), None) == 412
    assert evaluate_preconditions("DELETE", asked(if_match='"v7"'), None) == 412


def test_if_unmodified_since() -> None:
    assert evaluate_preconditions("PUT", asked(if_unmodified_since=date(MODIFIED)),
                                  CURRENT) is None
    assert evaluate_preconditions("PUT", asked(if_unmodified_since=date(MODIFIED - 1)),
                                  CURRENT) == 412
    # ignored without a modification date, when invalid, or when sent twice
    assert evaluate_preconditions("PUT", asked(if_unmodified_since=date(0)),
                                  Validators(etag="v7")) is None
    assert evaluate_preconditions("PUT", asked(if_unmodified_since="yesterday"),
                                  CURRENT) is None
    twice = asked(if_unmodified_since=[date(MODIFIED - 1), date(MODIFIED - 1)])
    assert evaluate_preconditions("PUT", twice, CURRENT) is None


def test_if_match_takes_precedence_over_if_unmodified_since() -> None:
    both = asked(if_match='"v7"', if_unmodified_since=date(MODIFIED - 1))
    assert evaluate_preconditions("PUT", both, CURRENT) is None


def test_if_modified_since_only_for_get_and_head() -> None:
    assert evaluate_preconditions("GET", asked(if_modified_since=date(MODIFIED)), CURRENT) == 304
    assert evaluate_preconditions("HEAD", asked(if_modified_since=date(MODIFIED + 60)),
                                  CURRENT) == 304
    assert evaluate_preconditions("GET", asked(if_modified_since=date(MODIFIED - 1)),
                                  CURRENT) is None
    assert evaluate_preconditions("POST", asked(if_modified_since=date(MODIFIED)),
                                  CURRENT) is None
    assert evaluate_preconditions("GET", asked(if_modified_since="not a date"), CURRENT) is None


def test_if_none_match_takes_precedence_over_if_modified_since() -> None:
    both = asked(if_none_match='"v8"', if_modified_since=date(MODIFIED))
    assert evaluate_preconditions("GET", both, CURRENT) is None


def test_if_match_is_checked_before_if_none_match() -> None:
    both = asked(if_match='"v8"', if_none_match='"v7"')
    assert evaluate_preconditions("GET", both, CURRENT) == 412


def test_unparsable_tags_match_nothing() -> None:
    assert evaluate_preconditions("GET", asked(if_none_match="v7"), CURRENT) is None
    assert evaluate_preconditions("PUT", asked(if_match="v7"), CURRENT) == 412


# --- dates ------------------------------------------------------------------------------------

def test_http_date_reads_the_three_forms_as_gmt() -> None:
    assert http_date("Tue, 14 Nov 2023 22:13:20 GMT") == MODIFIED
    assert http_date("Tuesday, 14-Nov-23 22:13:20 GMT") == MODIFIED
    assert http_date("Tue Nov 14 22:13:20 2023") == MODIFIED
    for bad in (None, "", "yesterday", "Tue, 99 Nov 2023 22:13:20 GMT"):
        assert http_date(bad) is None


# --- what a 304 carries -----------------------------------------------------------------------

def test_not_modified_headers_keep_cache_updates_and_drop_representation_metadata() -> None:
    kept = not_modified_headers([
        (b"content-type", b"text/html"), (b"content-length", b"5"),
        (b"content-encoding", b"gzip"), (b"content-language", b"de"),
        (b"content-disposition", b"inline"), (b"content-location", b"/de"),
        (b"etag", b'"v7"'), (b"last-modified", b"x"), (b"cache-control", b"max-age=60"),
        (b"vary", b"Accept-Language"), (b"expires", b"y"), (b"set-cookie", b"a=1"),
    ])
    assert [name for name, _ in kept] == [
        b"content-location", b"etag", b"last-modified", b"cache-control", b"vary",
        b"expires", b"set-cookie"]


def test_precondition_failed_is_a_412_problem() -> None:
    error = PreconditionFailed("changed")
    assert error.status_code == 412
    assert error.to_problem()["title"] == "Precondition Failed"


# --- properties -------------------------------------------------------------------------------

ETAG_TEXT = st.text(st.characters(min_codepoint=0x23, max_codepoint=0x7E), max_size=20)
SECONDS = st.integers(min_value=0, max_value=4_000_000_000)


@given(body=st.binary(max_size=2048), others=st.lists(ETAG_TEXT, max_size=3),
       weak=st.booleans(), method=st.sampled_from(["GET", "HEAD"]))
def test_an_etag_sent_back_always_yields_304(body: bytes, others: list[str], weak: bool,
                                              method: str) -> None:
    etag = etag_for(body)
    listed = [f'"{tag}"' for tag in others] + [f"W/{etag}" if weak else etag]
    headers = asked(if_none_match=", ".join(listed))
    assert evaluate_preconditions(method, headers, Validators(etag)) == 304


@given(body=st.binary(max_size=512), other=st.binary(max_size=512))
def test_an_etag_of_other_bytes_never_yields_304(body: bytes, other: bytes) -> None:
    if body == other:
        return
    headers = asked(if_none_match=etag_for(other))
    assert evaluate_preconditions("GET", headers, Validators(etag_for(body))) is None


@given(modified=SECONDS, since=SECONDS)
def test_if_modified_since_is_304_exactly_when_not_modified_after(modified: int,
                                                                  since: int) -> None:
    outcome = evaluate_preconditions("GET", asked(if_modified_since=date(since)),
                                     Validators(last_modified=modified))
    assert outcome == (304 if modified <= since else None)


@given(modified=SECONDS, since=SECONDS, method=st.sampled_from(["PUT", "PATCH", "DELETE"]))
def test_if_unmodified_since_is_412_exactly_when_modified_after(modified: int, since: int,
                                                                method: str) -> None:
    outcome = evaluate_preconditions(method, asked(if_unmodified_since=date(since)),
                                     Validators(last_modified=modified))
    assert outcome == (412 if modified > since else None)


@given(tag=ETAG_TEXT, listed=st.lists(ETAG_TEXT, max_size=4), method=st.sampled_from(
    ["GET", "PUT", "DELETE"]))
def test_if_match_holds_exactly_when_the_strong_tag_is_listed(tag: str, listed: list[str],
                                                             method: str) -> None:
    headers = asked(if_match=", ".join(f'"{t}"' for t in listed) or '""')
    outcome = evaluate_preconditions(method, headers, Validators(tag))
    assert outcome == (None if tag in listed or (not listed and tag == "") else 412)
