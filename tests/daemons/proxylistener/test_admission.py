"""Connection slots and the refusal log as pure objects: caps in their order, sources, a quiet log."""

from __future__ import annotations

from toolforgectl.daemons.proxylistener.admission import LOG_SOURCES_MAX, RefusalLog, Slots, source_of


def test_a_source_over_its_own_cap_is_refused_before_the_overall_cap_counts() -> None:
    slots = Slots(total=3, per_source=2)

    assert [slots.take("10.0.0.1") for _ in range(3)] == [None, None, "per_source"]
    assert slots.take("10.0.0.2") is None
    assert slots.take("10.0.0.3") == "total"
    assert slots.take("10.0.0.1") == "per_source", "its own cap, even with the overall one full"


def test_a_slot_given_back_admits_the_next_connection() -> None:
    slots = Slots(total=1, per_source=1)
    assert slots.take("10.0.0.1") is None

    slots.give_back("10.0.0.1")

    assert slots.take("10.0.0.2") is None
    assert dict(slots.held) == {"10.0.0.2": 1}, "a source with nothing open is forgotten"


def test_one_ipv6_host_counts_as_one_source_and_mapped_ipv4_as_itself() -> None:
    # A host usually gets a whole /64 and can pick any address in it for each connection.
    assert source_of("2001:db8:1:2::1") == source_of("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert source_of("2001:db8:1:3::1") != source_of("2001:db8:1:2::1")
    assert source_of("::ffff:10.0.0.7") == source_of("10.0.0.7") == "10.0.0.7"


def test_refusals_are_logged_once_per_source_per_interval_with_the_count_left_out() -> None:
    now = [100.0]
    log = RefusalLog(interval=10.0, clock=lambda: now[0])

    assert log.due("10.0.0.1") == 0
    assert [log.due("10.0.0.1") for _ in range(41)] == [None] * 41
    assert log.due("10.0.0.2") == 0, "another source has its own budget"
    now[0] += 10.0
    assert log.due("10.0.0.1") == 41
    assert log.due("10.0.0.1") is None


def test_a_flood_from_very_many_sources_keeps_the_log_and_the_memory_bounded() -> None:
    log = RefusalLog(interval=10.0, clock=lambda: 100.0)

    logged = [log.due(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}") for n in range(3 * LOG_SOURCES_MAX)]

    assert sum(1 for left_out in logged if left_out is not None) == LOG_SOURCES_MAX + 1
    assert len(log.last) == LOG_SOURCES_MAX + 1, "the rest share one entry"
