"""The database's own search backend, for SQLite and PostgreSQL (settings: ``search.backends.sql.SqlSearchBackend``).

* backend.py — :class:`SqlSearchBackend`: a search evaluated once into a hits table, counted, faceted, paged;
* planner.py — the query planner: its six strategies for finding a query's first hits and counting them;
* compiler.py — the query AST compiled to Django ``Q`` filters and SQL conditions (:func:`compile_q`);
* facets.py — facet counts over the hits table or a whole case's traces;
* fulltext.py — words as the index splits them, match and number conditions, the writer's deferred words;
* schema.py — the full-text and number indexes and their triggers, as they are now.
"""

from search.backends.sql.backend import SqlSearchBackend
from search.backends.sql.compiler import compile_q

__all__ = ["SqlSearchBackend", "compile_q"]
