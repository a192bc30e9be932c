def parse_seconds(text):
    return int(text[:-1])
