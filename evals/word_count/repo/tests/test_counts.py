from counts import word_count


def test_single_spaces():
    assert word_count("a b c") == 3


def test_double_spaces():
    assert word_count("a  b") == 2
