"""Custody reports: one evidence item, or one case, as JSON (the data) and as PDF (the data for a court).

Why here, in the project package and not in an app: a custody report reads every app — the audit trail
(``audit``), the case and its team (``cases``), the evidence, its seal, its secrets' names and its links
(``evidence``), and the extraction runs with their tools and versions (``search.models.ExtractionRun``).
The apps are stacked ``search → evidence → cases → audit`` and each imports only those below it, so the
report cannot live in ``audit`` (which imports no app) nor in ``evidence`` (which never imports
``search``). ``search`` could import the rest, but a custody report is not about traces, and putting it
there would make the traces' app the owner of the chain of custody. ``custodia`` is outside the stack
(it already holds the shared web layer that reads every app), so the report sits here, as a package of
its own with the usual shape:

- ``chain``    the chain facts a report names (head, checkpoints, key fingerprint): the seam to the
               signed checkpoints, one function, ``chain_facts``;
- ``builder``  the report's data (reads only), the audit trail read once in batches;
- ``pdf``      the PDF rendering (ReportLab);
- ``services`` producing a report, audited as ``custody.report`` with its SHA-256;
- ``views``, ``urls``  the four endpoints under ``/api/``.
"""
