from shop.cart import total


def test_empty_cart():
    assert total([]) == 0
