"""What the server takes as a text: a ``str`` of valid Unicode, not blank, not too long.

JSON can spell a lone UTF-16 surrogate (``"a\\ud800b"``); Python reads it into a
``str`` that no tokenizer accepts, no UTF-8 file holds and no JSON response can
carry. Such a text is refused where it comes in (a request body, an FAQ file),
before it can join a micro-batch shared with other requests.
"""

from __future__ import annotations


def lone_surrogate(text: str) -> int | None:
    """Index of the first character that UTF-8 cannot encode (a lone surrogate), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return err.start
    return None


def text_problem(text: object, max_chars: int | None = None) -> str | None:
    """Why ``text`` is not a usable text, as a phrase after its name, or None if it is.

    Args:
        text: The value to check.
        max_chars: Longest allowed length in characters (None: no limit).

    Returns:
        For example ``"is empty"``, so callers write ``f"{name} {problem}"``.
    """
    if not isinstance(text, str):
        return f"must be a string, not {type(text).__name__}"
    bad = lone_surrogate(text)
    if bad is not None:
        code = f"U+{ord(text[bad]):04X}"
        return f"has a lone surrogate ({code}) at character {bad}; texts must be valid Unicode"
    if not text.strip():
        return "is empty"
    if max_chars is not None and len(text) > max_chars:
        return f"has {len(text)} characters; the limit is {max_chars}"
    return None


def printable(message: str) -> str:
    """``message`` with anything UTF-8 cannot encode escaped, safe to put in a response."""
    return message.encode("utf-8", "backslashreplace").decode("utf-8")
