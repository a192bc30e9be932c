from __future__ import annotations

from breakingwind.engine.stops import StopMatcher


def feed_all(matcher: StopMatcher, pieces: list[str]) -> str:
    out = "".join(matcher.feed(piece) for piece in pieces)
    return out if matcher.stopped else out + matcher.flush()


def test_stop_split_across_pieces_is_caught_and_removed() -> None:
    matcher = StopMatcher(["END"])
    assert feed_all(matcher, ["hello E", "N", "D tail"]) == "hello "
    assert matcher.stopped


def test_partial_match_that_does_not_complete_is_released() -> None:
    matcher = StopMatcher(["END"])
    assert matcher.feed("hello EN") == "hello "
    assert matcher.feed("x") == "ENx"
    assert not matcher.stopped


def test_earliest_of_several_stops_wins() -> None:
    matcher = StopMatcher(["bb", "a"])
    assert feed_all(matcher, ["xxbba"]) == "xx"


def test_no_stops_passes_everything_through() -> None:
    assert feed_all(StopMatcher([]), ["a", "b"]) == "ab"
