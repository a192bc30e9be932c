from shop.cart import total
from shop.prices import with_tax


def test_with_tax():
    assert with_tax(100) == 125


def test_total_includes_tax():
    assert total([10, 20]) == 37.5
