"""The file `breakingwind bench` asks the model to rewrite with type hints (speculative decoding:
an edit copies most of its input). Untyped on purpose; nothing imports it."""

import json
from collections import defaultdict


class Inventory:
    def __init__(self, path):
        self.path = path
        self.items = {}
        self.history = []

    def load(self):
        with open(self.path) as handle:
            data = json.load(handle)
        for name, entry in data.items():
            self.items[name] = {"count": entry["count"], "price": entry["price"]}
        return len(self.items)

    def save(self):
        with open(self.path, "w") as handle:
            json.dump(self.items, handle, indent=2)

    def add(self, name, count, price):
        if count <= 0:
            raise ValueError("count must be positive")
        entry = self.items.setdefault(name, {"count": 0, "price": price})
        entry["count"] += count
        entry["price"] = price
        self.history.append(("add", name, count))
        return entry["count"]

    def remove(self, name, count):
        entry = self.items.get(name)
        if entry is None or entry["count"] < count:
            return False
        entry["count"] -= count
        self.history.append(("remove", name, count))
        if entry["count"] == 0:
            del self.items[name]
        return True

    def total_value(self):
        return sum(e["count"] * e["price"] for e in self.items.values())

    def low_stock(self, threshold=5):
        return sorted(name for name, e in self.items.items() if e["count"] < threshold)

    def moves_by_item(self):
        moves = defaultdict(list)
        for action, name, count in self.history:
            moves[name].append((action, count))
        return dict(moves)


def merge(first, second):
    merged = Inventory(first.path)
    for source in (first, second):
        for name, entry in source.items.items():
            merged.add(name, entry["count"], entry["price"])
    return merged
