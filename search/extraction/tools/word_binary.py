"""The body text of a Word 97-2003 binary document (``.doc``), from its piece table ([MS-DOC] 2.4.1).

The ``WordDocument`` stream starts with the File Information Block (FIB): it says which table stream
(``0Table`` or ``1Table``) holds the piece table (the ``Clx`` at ``fcClx``) and how many characters the main
document has (``ccpText``). Each piece maps a run of character positions to bytes of ``WordDocument``,
either 8-bit (cp1252, "compressed") or UTF-16LE. Field codes (``HYPERLINK "…"``) are dropped and their
shown result kept, as Word shows them; cell and paragraph marks become tabs and line breaks.

Encrypted documents (``fEncrypted``) and files that are not Word 97 or later give no text and say why.
"""

from __future__ import annotations

import struct

_WORD_IDENT = 0xA5EC
_FLAG_ENCRYPTED = 0x0100
_FLAG_ONE_TABLE = 0x0200
_FC_CLX_INDEX = 33  # fcClx/lcbClx in FibRgFcLcb97
_CCP_TEXT_INDEX = 3  # ccpText in FibRgLw97
_COMPRESSED = 0x40000000

_FIELD_BEGIN, _FIELD_SEPARATOR, _FIELD_END = "\x13", "\x14", "\x15"
_REPLACEMENTS = {
    "\r": "\n",  # paragraph mark
    "\x0b": "\n",  # line break
    "\x0c": "\n",  # page or section break
    "\x07": "\t",  # cell or row mark
    "\x1e": "-",  # non-breaking hyphen
    "\x1f": "",  # optional hyphen
    "\xa0": " ",
}
_DROPPED = {"\x01", "\x02", "\x03", "\x04", "\x05", "\x08"}  # pictures, footnote marks, annotations, drawings


class WordTextError(ValueError):
    """The stream is not a Word 97-2003 document whose text can be read (encrypted, damaged, older)."""


def word_text(*, word_document: bytes, tables: dict[str, bytes], max_chars: int) -> str:
    """The main document's text (at most ``max_chars`` characters read) of a ``.doc``'s streams."""
    if len(word_document) < 0x1A2 + 8:
        raise WordTextError("WordDocument stream too short for a Word 97 FIB")
    ident, _version = struct.unpack_from("<HH", word_document, 0)
    if ident != _WORD_IDENT:
        raise WordTextError("not a Word 97-2003 document (no FIB signature)")
    (flags,) = struct.unpack_from("<H", word_document, 0x0A)
    if flags & _FLAG_ENCRYPTED:
        raise WordTextError("the document is encrypted: no text without its password")
    table = tables.get("1Table" if flags & _FLAG_ONE_TABLE else "0Table")
    if table is None:
        raise WordTextError("the table stream the FIB names is missing")
    offset = 32
    (csw,) = struct.unpack_from("<H", word_document, offset)
    offset += 2 + 2 * csw
    (cslw,) = struct.unpack_from("<H", word_document, offset)
    rg_lw = offset + 2
    offset = rg_lw + 4 * cslw
    (cb_rg_fc_lcb,) = struct.unpack_from("<H", word_document, offset)
    if cslw <= _CCP_TEXT_INDEX or cb_rg_fc_lcb <= _FC_CLX_INDEX:
        raise WordTextError("FIB too short to name the piece table")
    (ccp_text,) = struct.unpack_from("<i", word_document, rg_lw + 4 * _CCP_TEXT_INDEX)
    fc_clx, lcb_clx = struct.unpack_from("<II", word_document, offset + 2 + 8 * _FC_CLX_INDEX)
    if fc_clx + lcb_clx > len(table) or lcb_clx == 0:
        raise WordTextError("the piece table lies outside the table stream")
    pieces = _piece_table(table[fc_clx : fc_clx + lcb_clx])
    wanted = max(0, min(ccp_text, max_chars))
    parts: list[str] = []
    for cp_start, cp_end, fc_value in pieces:
        if cp_start >= wanted:
            break
        count = min(cp_end, wanted) - cp_start
        if fc_value & _COMPRESSED:
            start = (fc_value & ~_COMPRESSED) // 2
            parts.append(word_document[start : start + count].decode("cp1252", "replace"))
        else:
            parts.append(word_document[fc_value : fc_value + 2 * count].decode("utf-16-le", "replace"))
    return _visible("".join(parts))


def _piece_table(clx: bytes) -> list[tuple[int, int, int]]:
    """(first CP, CP after the last, fc) of every piece of a Clx: its Prc entries skipped, its Pcdt read."""
    position = 0
    while position < len(clx) and clx[position] == 0x01:  # Prc: formatting, not text
        (size,) = struct.unpack_from("<h", clx, position + 1)
        position += 3 + max(size, 0)
    if position + 5 > len(clx) or clx[position] != 0x02:
        raise WordTextError("no piece table (Pcdt) in the Clx")
    (length,) = struct.unpack_from("<I", clx, position + 1)
    plc = clx[position + 5 : position + 5 + length]
    count = (len(plc) - 4) // 12  # n+1 CPs of 4 bytes and n Pcds of 8 bytes
    if count <= 0:
        raise WordTextError("empty piece table")
    cps = struct.unpack_from(f"<{count + 1}I", plc, 0)
    pieces = []
    for index in range(count):
        (fc_value,) = struct.unpack_from("<I", plc, 4 * (count + 1) + 8 * index + 2)
        if cps[index + 1] > cps[index]:
            pieces.append((cps[index], cps[index + 1], fc_value))
    return pieces


def _visible(text: str) -> str:
    """Word's text as it shows it: field codes dropped (their results kept), marks as text characters."""
    shown: list[str] = []
    # For each open field: whether its code part is over (the separator seen), so its result shows.
    fields: list[bool] = []
    for character in text:
        if character == _FIELD_BEGIN:
            fields.append(False)
        elif character == _FIELD_SEPARATOR:
            if fields:
                fields[-1] = True
        elif character == _FIELD_END:
            if fields:
                fields.pop()
        elif not all(fields):
            continue  # inside a field's code (or a field nested in one)
        elif character not in _DROPPED:
            shown.append(_REPLACEMENTS.get(character, character))
    return "".join(shown)
