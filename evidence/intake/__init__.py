"""Evidence intake helpers that need no database: format detection, segment grouping, one-pass and
resumable hashing, EWF stored-hash checks and import-root confinement.

Services (``evidence.services``) call these; nothing here writes to the database or the evidence store.
See ``docs/intake.md``.
"""
