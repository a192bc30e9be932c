TAX_RATE = 0.2


def with_tax(amount):
    return amount * (1 + TAX_RATE)
