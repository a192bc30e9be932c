from strings import shout


def test_shout():
    assert shout("hi") == "HI!"
