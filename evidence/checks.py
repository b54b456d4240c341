"""Start-up checks: refuse to run a deployment whose evidence or key store cannot do its job
(an Azure container without a locked immutability policy, a key store without its master key)."""

from django.core import checks

from evidence.keystore.base import KeyStoreError, get_keystore
from evidence.storage.base import StoreError, get_store


@checks.register(deploy=True)
def stores_ready(app_configs=None, **kwargs):
    problems = []
    try:
        get_store().check_ready()
    except StoreError as exc:
        problems.append(checks.Error(f"The evidence store cannot accept evidence: {exc}", id="custodia.E001"))
    try:
        get_keystore().check_ready()
    except KeyStoreError as exc:
        problems.append(checks.Error(f"The key store cannot be used: {exc}", id="custodia.E002"))
    return problems
