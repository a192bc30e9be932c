import pytest
from timeparse import parse_seconds


def test_units():
    assert parse_seconds("90s") == 90
    assert parse_seconds("2m") == 120


def test_garbage_is_refused():
    with pytest.raises(ValueError):
        parse_seconds("5x")
