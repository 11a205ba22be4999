"""Small helpers shared by tests."""

from __future__ import annotations


def numbered_choice(text: str, label: str) -> str:
    """The number an official would type to pick ``label``."""
    for line in text.splitlines():
        number, _, rest = line.partition(". ")
        if number.isdigit() and rest.startswith(label):
            return number
    raise AssertionError(f"no choice {label!r} in:\n{text}")
