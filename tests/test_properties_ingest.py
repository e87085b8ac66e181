"""Property-based tests of the FREE-ingest parser: any bytes, text, CSV or JSON is either parsed into
items or rejected line by line with a reason, never an exception; line numbers are those an editor
shows, for every line ending."""

from __future__ import annotations

import csv
import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harmony_pipeline.ingest.parser import IngestError, IngestItem, Rejection, parse_submission

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FILENAMES = st.sampled_from([None, "list.txt", "list.csv", "list.tsv", "list.json", "list.md", "noext"])
NAMES = st.text(st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=40)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats(allow_nan=True) | NAMES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["artist", "title", "album", "isrc", "uri", "duration_ms", "year", "track", "item",
                         "artists", "name", "external_ids", "Track URI", "x"]) | NAMES, inner, max_size=5),
    max_leaves=20)


def line_count(text: str) -> int:
    return text.replace("\r\n", "\n").replace("\r", "\n").count("\n") + 1


def check(result, text: str | None) -> None:
    for outcome in result.items + result.rejections:
        assert isinstance(outcome, (IngestItem, Rejection))
        assert outcome.line_number >= 1
        if text is not None:
            assert outcome.line_number <= line_count(text)
    for rejection in result.rejections:
        assert rejection.reason and "\n" not in rejection.reason[:1]
    fingerprints = [item.fingerprint for item in result.items]
    assert len(fingerprints) == len(set(fingerprints))  # duplicates became rejections


@FAST
@given(st.binary(max_size=2000), FILENAMES)
def test_any_bytes_are_parsed_or_rejected(data, filename):
    check(parse_submission(data, filename), None)


@FAST
@given(st.text(max_size=2000), FILENAMES)
def test_any_text_is_parsed_or_rejected_with_line_numbers_in_range(text, filename):
    check(parse_submission(text, filename), text)


@FAST
@given(st.lists(st.lists(NAMES, min_size=1, max_size=6), max_size=30), st.sampled_from([",", ";", "\t"]),
       st.booleans())
def test_any_csv_table_is_parsed_or_rejected(rows, delimiter, exportify_header):
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    if exportify_header:
        writer.writerow(["Track URI", "Track Name", "Artist Name(s)", "Album Name", "Duration (ms)", "ISRC"])
    writer.writerows(rows)
    check(parse_submission(buffer.getvalue(), "list.csv"), buffer.getvalue())


@FAST
@given(JSON_VALUES)
def test_any_json_document_is_parsed_or_rejected(document):
    text = json.dumps(document)
    check(parse_submission(text, "list.json"), text)
    check(parse_submission(json.dumps({"tracks": document}), "list.json"), None)


@FAST
@given(st.lists(st.tuples(st.sampled_from(["Björk", "Sigur Rós", "A"]), st.integers(0, 10**6)), min_size=1,
                max_size=40),
       st.lists(st.sampled_from(["", " ", "\n", "\r\n", "\r", "\t\n  "]), min_size=41, max_size=41))
def test_json_elements_report_the_line_they_start_on(entries, gaps):
    """Whatever whitespace and line endings separate the elements (CR alone too)."""
    text = "[" + gaps[0]
    expected = []
    for index, (artist, number) in enumerate(entries):
        expected.append(line_count(text + "x") if text else 1)
        text += json.dumps(f"{artist} - Song {number}") + gaps[index + 1] + ("," if index < len(entries) - 1 else "")
    text += "]"
    result = parse_submission(text, "list.json")
    lines = sorted([o.line_number for o in result.items + result.rejections])
    assert lines == sorted(expected)


@settings(max_examples=5, deadline=None)
@given(st.integers(4301, 20000))
def test_json_integers_beyond_python_limit_are_a_rejection(digits):
    result = parse_submission("[" + "9" * digits + "]", "list.json")
    assert result.items == [] and "invalid JSON" in result.rejections[0].reason


def test_submission_over_the_limit_is_refused_whole():
    try:
        parse_submission(b"A - B\n" * 1_000_000, "list.txt")
    except IngestError as refused:
        assert "limit is 5 MiB" in str(refused)
    else:
        raise AssertionError("a 6 MB submission was accepted")


POOL = ["Björk - Jóga", "björk – jóga", "Sigur Rós - Hoppípolla", "no separator", "", "# comment",
        "spotify:track:4uLU6hMCjMI75M1A2tKUQC", "https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC",
        "USRC17607839", "Artist - Title (Album) 3:45", "x" * 1001]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(POOL) | st.text(max_size=30), max_size=40), st.integers(1, 4))
def test_recording_as_it_parses_gives_the_reasons_of_a_whole_parse(lines, chunk):
    """The streamed path (duplicates found in DuckDB, chunk by chunk) says what parse_submission says,
    for a first submission and for the same text submitted again."""
    import duckdb

    from harmony_pipeline import storage
    from harmony_pipeline.ingest import store as ingest_store
    from harmony_pipeline.ingest.parser import iter_submission

    text = "\n".join(lines)
    whole = parse_submission(text, "list.txt")
    first_reasons = sorted((r.line_number, r.reason) for r in whole.rejections)
    again_reasons = sorted(first_reasons + [(i.line_number, ingest_store.ALREADY_SUBMITTED) for i in whole.items])
    saved = ingest_store.INSERT_CHUNK
    ingest_store.INSERT_CHUNK = chunk  # duplicates across chunks, not only within one
    try:
        with duckdb.connect(":memory:") as conn:
            storage.migrate(conn)
            for expected_accepted, expected in ((len(whole.items), first_reasons), (0, again_reasons)):
                outcome = ingest_store.record_submission(
                    conn, iter_submission(text, "list.txt", deduplicate=False), "list.txt")
                assert outcome.accepted == expected_accepted
                assert sorted((s.line_number, s.reason) for s in outcome.skipped) == expected
    finally:
        ingest_store.INSERT_CHUNK = saved
