from strings import reverse, shout


def test_reverse():
    assert reverse("abc") == "cba"
    assert reverse("") == ""


def test_shout_unchanged():
    assert shout("hi") == "HI!"
