import pytest
from timeparse import parse_seconds


def test_units():
    assert parse_seconds("90s") == 90
    assert parse_seconds("2m") == 120
    assert parse_seconds("1h") == 3600


@pytest.mark.parametrize("text", ["5x", "", "m", "10"])
def test_garbage_is_refused(text):
    with pytest.raises(ValueError):
        parse_seconds(text)
