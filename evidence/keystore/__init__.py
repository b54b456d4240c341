from evidence.keystore.base import EscrowedSecret, KeyStore, KeyStoreError, get_keystore

__all__ = ["EscrowedSecret", "KeyStore", "KeyStoreError", "get_keystore"]
