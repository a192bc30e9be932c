import pytest
from mathutils import clamp


def test_clamp():
    assert clamp(5, 0, 10) == 5
    assert clamp(-3, 0, 10) == 0
    assert clamp(30, 0, 10) == 10


def test_clamp_rejects_an_empty_range():
    with pytest.raises(ValueError):
        clamp(1, 5, 0)
