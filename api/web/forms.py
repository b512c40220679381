"""What the staff page's forms have in common."""

from __future__ import annotations


def written_text(value: str, longest: int, message: str) -> tuple[str, str | None]:
    """A text a staff member wrote in a form, without the blanks around it, and what is wrong
    with it: the message `{message}_required` when empty, `{message}_too_long` beyond `longest`
    characters, None when it may be kept."""
    value = value.strip()
    if not value:
        return value, f"{message}_required"
    if len(value) > longest:
        return value, f"{message}_too_long"
    return value, None
