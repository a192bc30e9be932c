from text_tools import shout


def test_shout():
    assert shout("hi") == "HI!"
