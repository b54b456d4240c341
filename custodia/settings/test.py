"""Settings for the test suite: the same as production but for speed-ups that change no behaviour."""

import os
import tempfile

os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdef")
os.environ.setdefault("CUSTODIA_DATA_DIR", tempfile.mkdtemp(prefix="custodia-test-"))
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("DJANGO_SECURE_COOKIES", "false")
os.environ.setdefault("CUSTODIA_EXTRACT_ON_SEAL", "false")  # tests start extraction runs explicitly
# The suite imports many small corpus images through the API and reads them at once: those are sealed in
# the request; the tests of the queued import (tests/evidence/test_evidence_import.py) set it to 0.
os.environ.setdefault("CUSTODIA_IMPORT_INLINE_BYTES", str(256 << 20))
# Tests run a started run's one share themselves (extraction_execute); those of shares set their count.
os.environ.setdefault("CUSTODIA_EXTRACTION_SHARDS", "1")
# A fixed master key for the local keystore of the tests only (base64 of 32 bytes).
os.environ.setdefault("CUSTODIA_MASTER_KEY", "dGVzdC1tYXN0ZXIta2V5LW5vdC1mb3ItcHJvZC0zMmI=")
# A fixed audit signing key (an Ed25519 seed) for the tests only, apart from the master key.
os.environ.setdefault("CUSTODIA_AUDIT_SIGNING_KEY", "dGVzdC1hdWRpdC1zaWduaW5nLWtleS1ub3QtZm9yLXA=")

# A fixed key of the privacy model for the tests only (base64 of 32 bytes), apart from the others.
os.environ.setdefault("CUSTODIA_PRIVACY_KEY", "dGVzdC1wcml2YWN5LWtleS1ub3QtZm9yLXByb2QtMzI=")

from audit.privacy import DEFAULT_POLICY as DEFAULT_PRIVACY_POLICY
from custodia.settings.base import *
from custodia.settings.base import DATA_DIR, DATABASES, STATIC_ROOT

ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; tests only
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory: worker processes and threads in the tests must see the same database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}

STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns about a missing folder otherwise
# The privacy model in the suite: every tag Custodia writes is kept public (PR), so the tests that read audit
# rows and log lines see the values they always saw; a tag nobody mapped is still removed (NI). The
# production default (audit.privacy.DEFAULT_POLICY) is tested in tests/audit/test_privacy_wiring.py, which
# sets it, and the policy-change row there too.
CUSTODIA_PRIVACY_POLICY = {tag: "PR" for tag in DEFAULT_PRIVACY_POLICY}
CUSTODIA_PRIVACY_RECORD_POLICY = False
# The look-up table in memory, so that a test without a database can log an MR value; the tests of the
# wiring use the database's (the production default).
CUSTODIA_PRIVACY_LOOKUP = "audit.privacy.MemoryLookupTable"
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"login": "1000/min"}}
