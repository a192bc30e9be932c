from calc.ops import mean


def test_mean():
    assert mean([1, 2, 3]) == 2
    assert mean([4]) == 4
    assert mean([1, 2]) == 1.5
