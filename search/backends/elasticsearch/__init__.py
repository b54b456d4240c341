"""Trace search in Elasticsearch (settings: ``search.backends.elasticsearch.ElasticsearchBackend``).

* backend.py — :class:`ElasticsearchBackend`: searches, counts and facets in Elasticsearch, pages read
  back from the database, documents kept up to date after writes;
* compiler.py — the query AST compiled to an ``elasticsearch.dsl`` query, and the search request around it;
* documents.py — the index's mapping and the document of one trace.
"""

from search.backends.elasticsearch.backend import ElasticsearchBackend

__all__ = ["ElasticsearchBackend"]
