"""Small helpers for the words of the output."""


def plural(count: int, noun: str) -> str:
    """``"1 architecture"``, ``"3 architectures"``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
