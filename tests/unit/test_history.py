"""Where the tick history lives and which hours need compacting: pure decisions, no AWS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tickwatch_core.history.layout import history_key, hour_of_key, hours_between, parse_hour
from tickwatch_core.history.plan import StoredObject, fingerprint, hours_to_compact, raw_objects_by_hour

HOUR = datetime(2026, 11, 20, 14, tzinfo=UTC)
WRITTEN = datetime(2026, 11, 20, 15, 7, tzinfo=UTC)


def raw(hour: datetime, batch: str, etag: str = "etag-1") -> StoredObject:
    key = f"raw/year={hour:%Y}/month={hour:%m}/day={hour:%d}/hour={hour:%H}/shardId-000000000000_{batch}.jsonl.gz"
    # S3 lists ETags in double quotes.
    return StoredObject(key=key, etag=f'"{etag}"', size=100, last_modified=WRITTEN)


# --- layout -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-20T14",
        "2026-11-20T14:00",
        "2026-11-20T14:00:00",
        "2026-11-20T14:00:00Z",
        "2026-11-20T14:00:00+00:00",
        "  2026-11-20T14\n",
    ],
)
def test_parse_hour_accepts_an_hour_in_every_spelling_of_utc(text):
    assert parse_hour(text) == HOUR


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2026-11-20T14:30", "is not an hour like"),  # a minute is not an hour
        ("2026-11-20T14:00:01Z", "is not an hour like"),
        ("2026-11-20T14:00:00+01:00", "is not an hour like"),  # only UTC: partitions are UTC hours
        ("2026-11-20", "is not an hour like"),
        ("2026-11-20 14", "is not an hour like"),
        ("20261120T14", "is not an hour like"),
        ("", "is not an hour like"),
        ("2026-11-20T24", "is not a real hour"),
        ("2026-02-30T00", "is not a real hour"),
        ("2026-13-01T00", "is not a real hour"),
    ],
)
def test_parse_hour_refuses_what_is_not_one_utc_hour_and_says_why(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_hour(text)


@pytest.mark.parametrize(
    "key",
    [
        "raw/year=2026/month=11/day=20/hour=14/shardId-000000000000_1_9.jsonl.gz",
        "history/year=2026/month=11/day=20/hour=14/ticks.parquet",
        "quarantine/year=2026/month=11/day=20/hour=14/compactor.jsonl",
    ],
)
def test_hour_of_key_reads_the_partition_of_every_prefix(key):
    assert hour_of_key(key) == HOUR


@pytest.mark.parametrize(
    "key",
    [
        "raw/notes.txt",
        "raw/year=2026/month=11/day=20/ticks.jsonl.gz",  # no hour
        "raw/year=2026/month=11/day=20/hour=4/x.jsonl.gz",  # not zero-padded: not the processor's
        "raw/year=2026/month=02/day=30/hour=14/x.jsonl.gz",  # no such day
        "raw/year=2026/month=11/day=20/hour=24/x.jsonl.gz",
    ],
)
def test_hour_of_key_is_none_outside_the_layout(key):
    assert hour_of_key(key) is None


def test_history_key_is_one_parquet_file_per_utc_hour():
    assert history_key(HOUR) == "history/year=2026/month=11/day=20/hour=14/ticks.parquet"
    new_york = timezone(timedelta(hours=-5))
    assert history_key(datetime(2026, 11, 20, 9, tzinfo=new_york)) == history_key(HOUR)
    assert hour_of_key(history_key(HOUR)) == HOUR


def test_hours_between_includes_both_ends_and_crosses_days():
    hours = list(hours_between(datetime(2026, 11, 20, 22, 30, tzinfo=UTC), datetime(2026, 11, 21, 1, 0, tzinfo=UTC)))
    assert hours == [datetime(2026, 11, 20, 22, tzinfo=UTC) + timedelta(hours=n) for n in range(4)]


def test_hours_between_one_hour_and_an_empty_range():
    assert list(hours_between(HOUR, HOUR)) == [HOUR]
    assert list(hours_between(HOUR + timedelta(minutes=59), HOUR + timedelta(minutes=59))) == [HOUR]
    assert list(hours_between(HOUR, HOUR - timedelta(hours=1))) == []


# --- plan ---------------------------------------------------------------------------------------


def test_fingerprint_ignores_listing_order_and_etag_quotes():
    objects = [raw(HOUR, "1_9"), raw(HOUR, "10_19"), raw(HOUR, "20_29")]
    unquoted = [StoredObject(o.key, o.etag.strip('"'), o.size, o.last_modified) for o in objects]
    assert fingerprint(objects) == fingerprint(reversed(objects)) == fingerprint(unquoted)


def test_fingerprint_changes_when_an_object_is_added():
    objects = [raw(HOUR, "1_9"), raw(HOUR, "10_19")]
    assert fingerprint([*objects, raw(HOUR, "20_29")]) != fingerprint(objects)


def test_fingerprint_changes_when_an_objects_bytes_change():
    # A rewritten object keeps its key; only its ETag tells.
    assert fingerprint([raw(HOUR, "1_9", etag="before")]) != fingerprint([raw(HOUR, "1_9", etag="after")])


def test_fingerprint_ignores_size_and_time_of_listing():
    stored = raw(HOUR, "1_9")
    relisted = StoredObject(stored.key, stored.etag, stored.size, WRITTEN + timedelta(days=1))
    assert fingerprint([stored]) == fingerprint([relisted])


def test_raw_objects_by_hour_keeps_only_raw_batches_grouped_by_hour_in_key_order():
    earlier = HOUR - timedelta(hours=1)
    listing = [
        raw(HOUR, "20_29"),
        raw(earlier, "1_9"),
        raw(HOUR, "10_19"),
        StoredObject("raw/year=2026/month=11/day=20/hour=14/notes.txt", '"x"', 1, WRITTEN),
        StoredObject("raw/README.jsonl.gz", '"x"', 1, WRITTEN),
    ]
    by_hour = raw_objects_by_hour(listing)
    assert list(by_hour) == [earlier, HOUR]
    assert by_hour[HOUR] == (raw(HOUR, "10_19"), raw(HOUR, "20_29"))


def test_hours_to_compact_names_new_hours_and_hours_with_late_data_oldest_first():
    earlier = HOUR - timedelta(hours=1)
    late = (raw(HOUR, "1_9"), raw(HOUR, "10_19"))
    raw_by_hour = {HOUR: late, earlier: (raw(earlier, "1_9"),)}
    compacted_from = {HOUR: fingerprint(late[:1])}  # compacted before the second batch landed

    work = hours_to_compact(raw_by_hour, compacted_from)

    assert [(w.hour, w.reason) for w in work] == [(earlier, "new"), (HOUR, "late data")]
    assert work[1].raw_objects == late
    assert work[1].fingerprint == fingerprint(late)
    assert work[1].raw_bytes == 200


def test_hours_to_compact_skips_an_hour_compacted_from_the_same_objects():
    objects = (raw(HOUR, "1_9"), raw(HOUR, "10_19"))
    assert hours_to_compact({HOUR: objects}, {HOUR: fingerprint(reversed(objects))}) == []


def test_hours_to_compact_treats_a_file_without_fingerprint_as_late_data():
    # A Parquet file whose metadata was lost (copied without it, say) cannot prove what it holds.
    (work,) = hours_to_compact({HOUR: (raw(HOUR, "1_9"),)}, {HOUR: ""})
    assert work.reason == "late data"


def test_force_requests_every_hour_with_raw_objects_even_unchanged_ones():
    objects = (raw(HOUR, "1_9"),)
    earlier = HOUR - timedelta(hours=1)
    work = hours_to_compact({HOUR: objects, earlier: (raw(earlier, "1_9"),)}, {HOUR: fingerprint(objects)}, force=True)
    assert [(w.hour, w.reason) for w in work] == [(earlier, "requested"), (HOUR, "requested")]


def test_an_hour_without_raw_objects_is_never_compacted():
    assert hours_to_compact({}, {HOUR: "anything"}, force=True) == []
