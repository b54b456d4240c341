"""Names from evidence made safe to show: control characters and bidirectional formatting characters
spelled out visibly. A file named ``invoice<RLO>fdp.exe`` (U+202E, the right-to-left override) reads as
``invoice<U+202E>fdp.exe`` on a page, in a CSV export and in ``hashes.txt`` rather than as
``invoiceexe.pdf``; a newline in a label adds no line to a text file (issue #17, finding 7).

Here, at the bottom of the app stack, because every app shows such names (the pages through the
``visible`` template filter, evidence in ``hashes.txt``, search in its CSV export). Pure Python.
"""

from __future__ import annotations

import re

# Bidirectional formatting: embeddings and overrides (U+202A to U+202E), isolates (U+2066 to U+2069), the marks
# (U+200E, U+200F, U+061C); zero-width characters that hide text (U+200B to U+200D, U+2060, U+FEFF); the line
# and paragraph separators; C0 controls (tab and newline too: in a name they are never formatting), DEL
# and the C1 controls.
_HIDDEN = re.compile("[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _spell(match: re.Match[str]) -> str:
    char = match.group()
    return _SHORT.get(char) or f"<U+{ord(char):04X}>"


def visible_text(value: object) -> str:
    """``value`` as text with every control or bidirectional formatting character spelled out."""
    text = "" if value is None else str(value)
    return _HIDDEN.sub(_spell, text)


__all__ = ["visible_text"]
