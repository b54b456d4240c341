"""What the search page's result table and timeline show: column sets per trace type, and date properties.

One place to change the page's columns. A column reads a trace attribute (``name``, ``path``, ``types``)
or a property (``picture.width``); ``sort`` is the key of ``search.backends.base.SORTS`` its header links
to, empty when the backends cannot sort by it; the ``link`` column opens the trace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from search.query.ast import PROPERTY_NAME_RE, And, Field, Node, property_name_error


@dataclass(frozen=True)
class Column:
    label: str
    key: str  # a hit's own field (name, path, types) or a property name
    sort: str = ""
    link: bool = False  # the cell that opens the trace

    @property
    def is_property(self) -> bool:
        return "." in self.key


NAME = Column("Name", "name", "name", link=True)
SIZE = Column("Size", "file.size", "size")

COLUMN_SETS: dict[str, tuple[str, tuple[Column, ...]]] = {
    "default": (
        "Files",
        (NAME, Column("Path", "path", "path"), SIZE, Column("Modified", "file.modifiedOn", "modifiedOn"),
         Column("Types", "types")),
    ),
    "picture": (
        "Pictures",
        (NAME, SIZE, Column("Width", "picture.width", "width"), Column("Height", "picture.height", "height"),
         Column("Taken", "picture.takenOn", "takenOn")),
    ),
    "email": (
        "E-mail",
        (Column("From", "email.from", "from"), Column("To", "email.to", "to"),
         Column("Subject", "email.subject", "subject", link=True), Column("Sent", "email.sentOn", "sentOn")),
    ),
}  # fmt: skip
DEFAULT_COLUMN_SET = "default"
# The team's tags on each hit, last in every column set (issue #20 item 9).
TAGS = Column("Tags", "tags")

# The date properties extraction writes (search/extraction), offered for the timeline; the first is the default.
DATE_PROPERTIES: dict[str, str] = {
    "file.modifiedOn": "File modified",
    "file.createdOn": "File created",
    "file.accessedOn": "File accessed",
    "file.changedOn": "File changed (inode)",
    "email.sentOn": "E-mail sent",
    "email.receivedOn": "E-mail received",
    "picture.takenOn": "Picture taken",
    "document.createdOn": "Document created",
    "document.modifiedOn": "Document modified",
    "browserHistory.accessedOn": "Web page visited",
}


MAX_EXTRA_COLUMNS = 6


def extra_columns(text: str) -> list[Column]:
    """Columns for the property names in ``text`` (comma or space separated); anything else is ignored."""
    names = [
        name for name in re.split(r"[,\s]+", text) if PROPERTY_NAME_RE.fullmatch(name) and not property_name_error(name)
    ]
    return [Column(name, name) for name in dict.fromkeys(names)][:MAX_EXTRA_COLUMNS]


def queried_type(node: Node | None) -> str | None:
    """The one trace type a query insists on (``type:email`` alone or ANDed with other clauses), if any."""
    items = node.items if isinstance(node, And) else (node,)
    types = {
        str(item.value).lower()
        for item in items
        if isinstance(item, Field) and item.name == "type" and item.op in (":", "=") and not item.wildcard
    }
    return types.pop() if len(types) == 1 else None


def column_set_for(*, chosen: str, node: Node | None, type_counts: dict[str, int], total: int) -> str:
    """The column set to show: the one the user chose, else the type the query or the hits narrow to.

    The hits narrow to a type when every hit has it (an .eml file is a file and an e-mail: e-mail wins,
    as the more specific set).
    """
    if chosen in COLUMN_SETS:
        return chosen
    kind = queried_type(node)
    if kind in COLUMN_SETS:
        return kind
    if total:
        for kind in COLUMN_SETS:
            if kind != DEFAULT_COLUMN_SET and type_counts.get(kind) == total:
                return kind
    return DEFAULT_COLUMN_SET


def cell(hit: dict, column: Column):
    """A hit's value for a column; multi-valued properties (``email.to``) joined."""
    value = hit["properties"].get(column.key) if column.is_property else hit.get(column.key)
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)
    return "" if value is None else value
