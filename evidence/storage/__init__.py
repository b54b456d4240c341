from evidence.storage.base import EvidenceStore, ObjectExists, ObjectMissing, RetentionViolation, StoreError, get_store

__all__ = ["EvidenceStore", "ObjectExists", "ObjectMissing", "RetentionViolation", "StoreError", "get_store"]
