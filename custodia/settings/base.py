"""Settings for every environment. Values that differ between deployments come from the environment
through the typed readers in ``custodia.env``; with nothing set, Custodia runs on its embedded defaults
(SQLite, a file-system Celery broker, local evidence and key stores) under ``CUSTODIA_DATA_DIR``."""

import os
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from custodia.env import database_from_url, env_bool, env_int, env_list, env_path, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DATA_DIR = env_path("CUSTODIA_DATA_DIR", BASE_DIR / "var")

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")
    SECRET_KEY = "insecure-development-key-only-for-debug-mode-" + "x" * 20
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "axes",
    "audit",
    "cases",
    "alerts",
    "evidence",
    "hashsets",
    "search",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "custodia.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The signed-in user's time zone, for every time the request shows or reads (cases/times.py).
    "cases.times.UserTimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Expected failures of page views (NotFound, Forbidden, ServiceError) to 404, 403 or an error page.
    "custodia.errors.PageErrorMiddleware",
    # Last, so that it sees the authenticated user and wraps exactly the view and its writes.
    "audit.middleware.AuditMiddleware",
    # The login throttle's answer to a locked-out login (django-axes asks for the last place).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "custodia.urls"
WSGI_APPLICATION = "custodia.wsgi.application"
ASGI_APPLICATION = "custodia.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            # {{ name|visible }} in every template: control and bidi characters of evidence names spelled out.
            "builtins": ["custodia.security"],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": database_from_url(DATABASE_URL)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_path("CUSTODIA_SQLITE_PATH", DATA_DIR / "custodia.sqlite3"),
            "OPTIONS": {
                # WAL lets readers go on while one writer writes. IMMEDIATE transactions take the write
                # lock up front, so two writers queue instead of failing on a lock upgrade; this is also
                # what keeps the audit chain linear on SQLite. Reads through a memory map of up to 2 GiB
                # (SQLite's own ceiling) skip a system call and a copy per page: a search touching a
                # hundred thousand traces reads a third faster (bench/search.py). A batch of traces dirties
                # pages of a dozen indexes at once: with a page cache of up to 128 MiB (SQLite's default is
                # 2 MiB) it does not spill them to the log mid-transaction, and with checkpoints every 80 MiB
                # of log (default 4 MiB), a page written by several batches is copied back to the database
                # once; indexing runs about half as fast again (bench/search.py).
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; "
                    "PRAGMA mmap_size=2147483648; PRAGMA cache_size=-131072; PRAGMA wal_autocheckpoint=20000; "
                    "PRAGMA journal_size_limit=134217728;"
                ),
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "cases.User"
AUTHENTICATION_BACKENDS = [
    # First: refuses every password check of a locked-out account or address (django-axes).
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    # Local accounts only (the embedded default, organisations without an IdP): a passphrase of 12 or more.
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "cases:list"
LOGOUT_REDIRECT_URL = "login"
GUARDIAN_RAISE_403 = False
ANONYMOUS_USER_NAME = None  # no guardian anonymous user: anonymous visitors get nothing

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("CUSTODIA_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Request bodies: JSON bodies are small; evidence uploads stream and are limited elsewhere.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("CUSTODIA_MAX_JSON_BODY", 1024 * 1024, minimum=1024)

# --- security -------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("CUSTODIA_SESSION_SECONDS", 8 * 3600, minimum=300)
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = False  # HTMX reads the token from the page, not the cookie
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Every page (custodia.security.ContentSecurityPolicyMiddleware): our own scripts and styles only, no inline
# script (templates keep JavaScript in static/js) and no inline style (htmx's is turned off in base.html);
# pictures also as data: and blob: URLs (thumbnails, the upload page's previews).
CUSTODIA_CONTENT_SECURITY_POLICY = env_str(
    "CUSTODIA_CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
# Preloading is a one-way commitment for the whole domain: the operator opts in, so the check's advice is
# silenced rather than followed by default.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
if env_bool("DJANGO_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Take the client address from X-Forwarded-For only behind a proxy that sets it, and then only its last hop
# (audit.middleware.client_address: the one place the client address is computed).
CUSTODIA_TRUST_X_FORWARDED_FOR = env_bool("CUSTODIA_TRUST_X_FORWARDED_FOR", False)

# Login throttling (django-axes, issue #17): every password check — the login form, /admin/login/, the API's
# token endpoint — counts failures per account and, separately, per client address. Past the limit, that
# account (from anywhere) and that address (for any account) are refused for the cool-off time; each lockout
# is audited (auth.lockout). A success does not wipe the count: it would let one good account reset an
# address's count of guesses at another.
AXES_FAILURE_LIMIT = env_int("CUSTODIA_LOGIN_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("CUSTODIA_LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "audit.middleware.client_address"
AXES_LOCKOUT_CALLABLE = "custodia.errors.login_locked_out"
AXES_RESET_ON_SUCCESS = False
AXES_DISABLE_ACCESS_LOG = True  # the audit trail records every login already
AXES_VERBOSE = False

# --- API -----------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "cases.authentication.BearerTokenAuthentication",
        "cases.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "cases.authentication.TokenScopePermission",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "custodia.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_PAGINATION_CLASS": "custodia.pagination.Pagination",
    "PAGE_SIZE": 50,
    # Throttles apply only to views that name a scope (the password login); the rest is unthrottled.
    # Counted per client address as audit.middleware.client_address computes it (never a client's own
    # X-Forwarded-For); the account and address lockout of every login path is django-axes's (above).
    "DEFAULT_THROTTLE_CLASSES": ["custodia.api.ClientAddressScopedThrottle"],
    "DEFAULT_THROTTLE_RATES": {"login": env_str("CUSTODIA_LOGIN_RATE", "20/min")},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Custodia API",
    "DESCRIPTION": "Digital-forensic case and evidence management: cases, evidence, traces and the audit trail.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "EvidenceKindEnum": "evidence.models.EvidenceKind",
        "SecretKindEnum": "evidence.models.SecretKind",
        # Two "status" choice sets (a case's, a re-identification request's): each named for what it is.
        "CaseStatusEnum": "cases.models.CaseStatus",
        "ReIdentificationStatusEnum": "audit.models.ReIdentificationStatus",
    },
}
CUSTODIA_API_TOKEN_TTL = timedelta(seconds=env_int("CUSTODIA_API_TOKEN_SECONDS", 8 * 3600, minimum=60))
CUSTODIA_API_TOKEN_MAX_TTL = timedelta(seconds=env_int("CUSTODIA_API_TOKEN_MAX_SECONDS", 90 * 24 * 3600, minimum=60))

# --- SAML single sign-on (issue #17, cases/saml) ----------------------------------------------------
# The service provider's key and certificate sign every AuthnRequest and LogoutRequest; one pair for all
# organisations, read from files (`make run` generates them into var/keys), never from the database.
CUSTODIA_SAML_SP_KEY_PATH = env_path("CUSTODIA_SAML_SP_KEY_PATH", DATA_DIR / "keys" / "saml-sp.key")
CUSTODIA_SAML_SP_CERT_PATH = env_path("CUSTODIA_SAML_SP_CERT_PATH", DATA_DIR / "keys" / "saml-sp.crt")
# The public address the IdPs know us by (https://custodia.example.org), when it differs from the address a
# request arrives at (a proxy that rewrites Host); empty: taken from the request.
CUSTODIA_SAML_BASE_URL = env_str("CUSTODIA_SAML_BASE_URL", "").rstrip("/")
# How long a sign-in may take at the IdP before its answer is refused (the pending AuthnRequest's life).
CUSTODIA_SAML_REQUEST_SECONDS = env_int("CUSTODIA_SAML_REQUEST_SECONDS", 600, minimum=60)

# --- evidence and key stores ----------------------------------------------------------------------
# Embedded defaults: a local write-once folder and a local keystore file in a separate folder. The real
# stack sets CUSTODIA_EVIDENCE_STORE=evidence.storage.azure.AzureBlobStore and
# CUSTODIA_KEY_STORE=evidence.keystore.azure.AzureKeyVaultStore with the variables below.
CUSTODIA_EVIDENCE_STORE = env_str("CUSTODIA_EVIDENCE_STORE", "evidence.storage.local.LocalWormStore")
if CUSTODIA_EVIDENCE_STORE.endswith("AzureBlobStore"):
    CUSTODIA_EVIDENCE_STORE_OPTIONS = {
        "account_url": env_str("CUSTODIA_AZURE_BLOB_ACCOUNT_URL", "") or None,
        "connection_string": env_str("CUSTODIA_AZURE_BLOB_CONNECTION_STRING", "") or None,
        "container": env_str("CUSTODIA_AZURE_BLOB_CONTAINER", "evidence"),
        # Development only: accept a container without a locked immutability policy (Azurite has none).
        "allow_mutable_container": env_bool("CUSTODIA_AZURE_ALLOW_MUTABLE_CONTAINER", False),
    }
else:
    CUSTODIA_EVIDENCE_STORE_OPTIONS = {"root": env_path("CUSTODIA_EVIDENCE_DIR", DATA_DIR / "evidence")}
# Start an extraction run as soon as evidence is sealed (otherwise an investigator starts it).
CUSTODIA_EXTRACT_ON_SEAL = env_bool("CUSTODIA_EXTRACT_ON_SEAL", True)
# Each extraction run is spread over this many Celery tasks (shares of every file system's top-level entries),
# by default one per core: a worker's processes (Celery's prefork pool starts one per core) walk its shares
# at once, and workers on other machines take shares too (docs/scaling.md).
CUSTODIA_EXTRACTION_SHARDS = env_int("CUSTODIA_EXTRACTION_SHARDS", min(os.cpu_count() or 1, 16), minimum=1, maximum=16)
# The absolute budget of one extraction of one evidence item (search/extraction/budget.py, docs/extraction.md):
# bytes decompressed out of disk images inside archives, images nested inside files, and the time after which
# no further nested image is opened. A run that hits one records it on the trace it stopped at.
CUSTODIA_EXTRACTION_BUDGET_BYTES = env_int("CUSTODIA_EXTRACTION_BUDGET_BYTES", 2 << 30, minimum=0)
CUSTODIA_EXTRACTION_BUDGET_NESTING = env_int("CUSTODIA_EXTRACTION_BUDGET_NESTING", 4, minimum=0, maximum=16)
CUSTODIA_EXTRACTION_BUDGET_SECONDS = env_int("CUSTODIA_EXTRACTION_BUDGET_SECONDS", 4 * 3600, minimum=1)
# A running extraction renews its lease as it goes; one whose lease runs out (its worker died, or lost the
# database for this long) is failed with the reason and can be started again (search.services.RunLease).
CUSTODIA_EXTRACTION_LEASE_SECONDS = env_int("CUSTODIA_EXTRACTION_LEASE_SECONDS", 900, minimum=30)
# Evidence up to this size is verified within the request that asks; larger evidence by a worker (a
# request would hold its web worker, and on SQLite the write lock, for as long as the read takes).
CUSTODIA_VERIFY_INLINE_BYTES = env_int("CUSTODIA_VERIFY_INLINE_BYTES", 1 << 30, minimum=0)
# Server-side import reads only below these folders (comma-separated absolute paths).
CUSTODIA_IMPORT_ROOTS = [Path(p) for p in env_list("CUSTODIA_IMPORT_ROOTS", [])]
# Import and local acquisition (docs/acquisition.md): a worker seals; a request seals in place only an
# image of at most CUSTODIA_IMPORT_INLINE_BYTES (0: every import queued). Block devices may be acquired
# only when their resolved path matches a pattern of CUSTODIA_ACQUIRE_DEVICES (none by default); a read
# error is retried CUSTODIA_ACQUIRE_READ_RETRIES times before its sectors are zero-filled and recorded.
CUSTODIA_IMPORT_INLINE_BYTES = env_int("CUSTODIA_IMPORT_INLINE_BYTES", 0, minimum=0)
CUSTODIA_ACQUIRE_DEVICES = env_list("CUSTODIA_ACQUIRE_DEVICES", [])
CUSTODIA_ACQUIRE_READ_RETRIES = env_int("CUSTODIA_ACQUIRE_READ_RETRIES", 3, minimum=0, maximum=100)
CUSTODIA_ACQUIRE_RETRY_DELAY_MS = env_int("CUSTODIA_ACQUIRE_RETRY_DELAY_MS", 50, minimum=0)
CUSTODIA_INTAKE_PROGRESS_SECONDS = env_int("CUSTODIA_INTAKE_PROGRESS_SECONDS", 1, minimum=0)
CUSTODIA_KEY_STORE = env_str("CUSTODIA_KEY_STORE", "evidence.keystore.local.LocalKeyStore")
if CUSTODIA_KEY_STORE.endswith("AzureKeyVaultStore"):
    CUSTODIA_KEY_STORE_OPTIONS = {
        "vault_url": env_str("CUSTODIA_KEY_VAULT_URL"),
        "key_name": env_str("CUSTODIA_KEY_VAULT_KEY", "custodia-kek"),
        # An EC P-256 key of the same vault signs the audit checkpoints (Key Vault has no Ed25519).
        "signing_key_name": env_str("CUSTODIA_KEY_VAULT_SIGNING_KEY", "custodia-audit-signing"),
    }
else:
    CUSTODIA_KEY_STORE_OPTIONS = {
        "path": env_path("CUSTODIA_KEYSTORE_PATH", DATA_DIR / "keys" / "keystore.json"),
        # Base64 of 32 random bytes; `make run` generates one into var/keys/master.key for the laptop default.
        "master_key": env_str("CUSTODIA_MASTER_KEY", "") or None,
        # The audit signing key: base64 of a 32-byte Ed25519 seed, its own key (never the master key);
        # `make run` generates one into var/keys/audit-signing.key. `check --deploy` fails without it.
        "signing_key": env_str("CUSTODIA_AUDIT_SIGNING_KEY", "") or None,
    }

# --- audit checkpoints (issue #15) ----------------------------------------------------------------
# The chain head is signed by the key store and archived write-once in the evidence store after every
# custody-critical event, every CUSTODIA_AUDIT_CHECKPOINT_EVENTS events and every
# CUSTODIA_AUDIT_CHECKPOINT_SECONDS (the periodic task, which also catches up after a failure).
CUSTODIA_AUDIT_SIGNER = env_str("CUSTODIA_AUDIT_SIGNER", "evidence.checkpoints.KeyStoreCheckpointSigner")
CUSTODIA_AUDIT_SIGNER_OPTIONS: dict = {}
CUSTODIA_AUDIT_ARCHIVE = env_str("CUSTODIA_AUDIT_ARCHIVE", "evidence.checkpoints.EvidenceStoreCheckpointArchive")
CUSTODIA_AUDIT_ARCHIVE_OPTIONS = {
    # The contract's place; the tests give each test its own prefix (worker processes included).
    "prefix": env_str("CUSTODIA_AUDIT_CHECKPOINT_PREFIX", "audit/checkpoints/"),
    "retention_days": env_int("CUSTODIA_AUDIT_CHECKPOINT_RETENTION_DAYS", 3650, minimum=1),
}
CUSTODIA_AUDIT_CHECKPOINT_EVENTS = env_int("CUSTODIA_AUDIT_CHECKPOINT_EVENTS", 100, minimum=1)
CUSTODIA_AUDIT_CHECKPOINT_SECONDS = env_int("CUSTODIA_AUDIT_CHECKPOINT_SECONDS", 300, minimum=10)

# --- privacy: the replacement model of confidential values (issue #19, docs/privacy.md) --------------
# Tag → transformation (PR PI ER EI SR SI MR MI NR NI); a tag not named here is removed (NI). Replace the
# whole dict, or give it as JSON in CUSTODIA_PRIVACY_POLICY_JSON, to change it without code.
from audit.privacy import DEFAULT_POLICY as _DEFAULT_PRIVACY_POLICY  # noqa: E402  (a constant; no app code runs)

CUSTODIA_PRIVACY_POLICY: dict[str, str] = dict(_DEFAULT_PRIVACY_POLICY)
if env_str("CUSTODIA_PRIVACY_POLICY_JSON", ""):
    import json as _json

    try:
        CUSTODIA_PRIVACY_POLICY = dict(_json.loads(env_str("CUSTODIA_PRIVACY_POLICY_JSON")))
    except (ValueError, TypeError) as _exc:
        raise ImproperlyConfigured(f"CUSTODIA_PRIVACY_POLICY_JSON: not a JSON object of tags: {_exc}") from None
# The system-wide key and the system identifier (audit.privacy.PrivacyKeys), never in the database: a key
# file (CUSTODIA_PRIVACY_KEY, or CUSTODIA_PRIVACY_KEY_FILE: `make run` generates var/keys/privacy.key), or a
# secret of the Azure Key Vault (CUSTODIA_PRIVACY_KEYS=audit.privacy_store.AzureKeyVaultPrivacyKeys).
# `manage.py check --deploy` fails when no key can be loaded (audit.E003).
CUSTODIA_PRIVACY_KEYS = env_str("CUSTODIA_PRIVACY_KEYS", "audit.privacy.SettingsPrivacyKeys")
if CUSTODIA_PRIVACY_KEYS.endswith("AzureKeyVaultPrivacyKeys"):
    CUSTODIA_PRIVACY_KEYS_OPTIONS: dict = {
        "vault_url": env_str("CUSTODIA_KEY_VAULT_URL", ""),
        "secret_name": env_str("CUSTODIA_PRIVACY_KEY_VAULT_SECRET", "custodia-privacy-key"),
        "system_id": env_str("CUSTODIA_PRIVACY_SYSTEM_ID", "custodia"),
    }
else:
    CUSTODIA_PRIVACY_KEYS_OPTIONS = {
        "key": env_str("CUSTODIA_PRIVACY_KEY", "") or None,
        "system_id": env_str("CUSTODIA_PRIVACY_SYSTEM_ID", "custodia"),
    }
# The external look-up table of the message scope (MR): a table of the database, apart from the key.
CUSTODIA_PRIVACY_LOOKUP = env_str("CUSTODIA_PRIVACY_LOOKUP", "audit.privacy_store.DatabaseLookupTable")
CUSTODIA_PRIVACY_LOOKUP_OPTIONS: dict = {}
# Write a privacy.policy_changed row when the policy in force is not the one the trail last recorded.
CUSTODIA_PRIVACY_RECORD_POLICY = env_bool("CUSTODIA_PRIVACY_RECORD_POLICY", True)
# An exception's message in a logged traceback is untagged and may hold a query, a username or a path: "remove"
# keeps the frames and the exception's class and removes every untagged message (production); "keep" keeps them
# (tagged values still replaced), for a developer's laptop.
CUSTODIA_PRIVACY_EXCEPTION_MESSAGES = env_str("CUSTODIA_PRIVACY_EXCEPTION_MESSAGES", "keep" if DEBUG else "remove")

# --- alerts and hand-offs (issue #19 items 6 and 7, docs/alerts.md) --------------------------------------
# The SIEM feed: RFC 5424 syslog over TCP (host:port; empty: off) and a webhook signed with HMAC-SHA256. The
# webhook's secret comes from the environment or a file, never from the database.
CUSTODIA_ALERTS_SYSLOG = env_str("CUSTODIA_ALERTS_SYSLOG", "")
CUSTODIA_ALERTS_SYSLOG_APP_NAME = env_str("CUSTODIA_ALERTS_SYSLOG_APP_NAME", "custodia")
CUSTODIA_ALERTS_WEBHOOK_URL = env_str("CUSTODIA_ALERTS_WEBHOOK_URL", "")
CUSTODIA_ALERTS_WEBHOOK_SECRET = env_str("CUSTODIA_ALERTS_WEBHOOK_SECRET", "")
if not CUSTODIA_ALERTS_WEBHOOK_SECRET and env_str("CUSTODIA_ALERTS_WEBHOOK_SECRET_FILE", ""):
    CUSTODIA_ALERTS_WEBHOOK_SECRET = Path(env_str("CUSTODIA_ALERTS_WEBHOOK_SECRET_FILE")).read_text().strip()
if CUSTODIA_ALERTS_WEBHOOK_URL and not CUSTODIA_ALERTS_WEBHOOK_SECRET:
    raise ImproperlyConfigured("CUSTODIA_ALERTS_WEBHOOK_URL needs CUSTODIA_ALERTS_WEBHOOK_SECRET(_FILE) to sign with")
# E-mail to each alert's recipients, through Django's mail backend (EMAIL_HOST, EMAIL_PORT, … below).
CUSTODIA_ALERTS_EMAIL = env_bool("CUSTODIA_ALERTS_EMAIL", False)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "custodia@localhost")
# Seconds a channel may take before the delivery counts as failed (and is retried).
CUSTODIA_ALERTS_CHANNEL_TIMEOUT = env_int("CUSTODIA_ALERTS_CHANNEL_TIMEOUT", 10, minimum=1)
# Thresholds of the rules (alerts/rules.py).
CUSTODIA_ALERTS_DENIALS = env_int("CUSTODIA_ALERTS_DENIALS", 5, minimum=1)
CUSTODIA_ALERTS_DENIAL_WINDOW_SECONDS = env_int("CUSTODIA_ALERTS_DENIAL_WINDOW_SECONDS", 600, minimum=1)
CUSTODIA_ALERTS_LINK_ADDRESSES = env_int("CUSTODIA_ALERTS_LINK_ADDRESSES", 3, minimum=2)
CUSTODIA_ALERTS_LINK_USES = env_int("CUSTODIA_ALERTS_LINK_USES", 50, minimum=1)
CUSTODIA_ALERTS_LINK_USE_WINDOW_SECONDS = env_int("CUSTODIA_ALERTS_LINK_USE_WINDOW_SECONDS", 3600, minimum=1)
CUSTODIA_ALERTS_GUESSES = env_int("CUSTODIA_ALERTS_GUESSES", 10, minimum=1)

# --- trace search (issue #5) ----------------------------------------------------------------------
# The database's own full-text index (SQLite FTS5 / PostgreSQL tsvector), or Elasticsearch 8/9
# ("search.backends.elasticsearch.ElasticsearchBackend" with CUSTODIA_ELASTICSEARCH_URL).
CUSTODIA_SEARCH_BACKEND = env_str("CUSTODIA_SEARCH_BACKEND", "search.backends.sql.SqlSearchBackend")
CUSTODIA_ELASTICSEARCH_URL = env_str("CUSTODIA_ELASTICSEARCH_URL", "")
CUSTODIA_ELASTICSEARCH_INDEX = env_str("CUSTODIA_ELASTICSEARCH_INDEX", "custodia-traces")
# A search counts its hits exactly up to this many (as Elasticsearch's track_total_hits); beyond, it
# reports "at least" this many and counts facets and the timeline over the first ones, unless it is
# asked for exact counts. Counting every one of 300,000 hits takes seconds on a database.
CUSTODIA_SEARCH_COUNT_LIMIT = env_int("CUSTODIA_SEARCH_COUNT_LIMIT", 10_000, minimum=1)
# Every search is stopped after this many milliseconds with a 422 naming this setting (0: no limit).
CUSTODIA_SEARCH_TIME_BUDGET_MS = env_int("CUSTODIA_SEARCH_TIME_BUDGET_MS", 10_000, minimum=0)
# PostgreSQL's work_mem while a search past the count limit fills its sample of hits: enough that the bitmap of
# a common word's hits stays exact on a case of millions of traces (search/backends/sql/planner.py).
CUSTODIA_SEARCH_SAMPLE_WORK_MEM = env_str("CUSTODIA_SEARCH_SAMPLE_WORK_MEM", "64MB")

# --- download links (issue #6) --------------------------------------------------------------------
# Links expire after CUSTODIA_LINK_DEFAULT_SECONDS unless asked otherwise, never later than the maximum.
# Links for external recipients, or longer than the approval threshold, wait for a second custodian,
# who must approve within CUSTODIA_LINK_APPROVAL_VALID_SECONDS or the request lapses.
CUSTODIA_LINK_DEFAULT_SECONDS = env_int("CUSTODIA_LINK_DEFAULT_SECONDS", 8 * 3600, minimum=60)
CUSTODIA_LINK_MAX_SECONDS = env_int("CUSTODIA_LINK_MAX_SECONDS", 72 * 3600, minimum=60)
CUSTODIA_LINK_APPROVAL_OVER_SECONDS = env_int("CUSTODIA_LINK_APPROVAL_OVER_SECONDS", 8 * 3600, minimum=0)
CUSTODIA_LINK_APPROVAL_VALID_SECONDS = env_int("CUSTODIA_LINK_APPROVAL_VALID_SECONDS", 24 * 3600, minimum=60)
# Guessing at links: refusals of tokens that prove no knowledge of a link are counted per client address in
# windows of CUSTODIA_LINK_GUESS_WINDOW_SECONDS (one audit row for the first, one with the count when the
# window closes); past CUSTODIA_LINK_GUESS_LIMIT in a window the address gets 429 until the window ends.
CUSTODIA_LINK_GUESS_WINDOW_SECONDS = env_int("CUSTODIA_LINK_GUESS_WINDOW_SECONDS", 60, minimum=1)
CUSTODIA_LINK_GUESS_LIMIT = env_int("CUSTODIA_LINK_GUESS_LIMIT", 20, minimum=1)
# Azure SAS links are user-delegation SAS. An account-key SAS is allowed only against a loopback Azurite,
# in development, and only when this is set (with the Azurite connection string below).
CUSTODIA_LINK_SAS_ALLOW_ACCOUNT_KEY = env_bool("CUSTODIA_LINK_SAS_ALLOW_ACCOUNT_KEY", False)
CUSTODIA_LINK_SAS_DEV_CONNECTION_STRING = env_str("CUSTODIA_LINK_SAS_DEV_CONNECTION_STRING", "")
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]["LinkKindEnum"] = "evidence.models.LinkKind"

# --- capture of Azure VM disks (issue #16) -------------------------------------------------------------
# What capture needs from Azure (evidence/capture/azure_client.py). The sign-in is read by the worker from
# its own environment per organisation (CUSTODIA_CAPTURE_<ORG>_TENANT_ID/_CLIENT_ID/_CLIENT_SECRET or
# _MANAGED_IDENTITY…; docs/capture.md), never from the database.
CUSTODIA_CAPTURE_CLIENT = env_str("CUSTODIA_CAPTURE_CLIENT", "evidence.capture.azure_client.AzureCaptureClient")
CUSTODIA_CAPTURE_CLIENT_OPTIONS: dict = {}
# Also copy each snapshot's VHD server-side into the immutable container (so a custodian can hand out an
# Azure SAS for it, #6): on by default when the evidence store is Azure Blob Storage.
CUSTODIA_CAPTURE_NATIVE_COPY = env_bool(
    "CUSTODIA_CAPTURE_NATIVE_COPY", CUSTODIA_EVIDENCE_STORE.endswith("AzureBlobStore")
)
# How long a snapshot's read access lasts if the clean-up never runs (it revokes it as soon as it can).
CUSTODIA_CAPTURE_ACCESS_SECONDS = env_int("CUSTODIA_CAPTURE_ACCESS_SECONDS", 4 * 3600, minimum=300, maximum=86400)

# --- Celery --------------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "") or "filesystem://"
if CELERY_BROKER_URL == "filesystem://":
    # A real broker that needs no server: messages are files under the data folder, so `make run`
    # runs a genuine worker process rather than eager mode.
    _broker_dir = DATA_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
else:
    # An unacknowledged task (its worker was killed) goes back to the queue after this many seconds.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CUSTODIA_TASK_VISIBILITY_SECONDS", 3600, minimum=1),
        "queue_order_strategy": "priority",
    }
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "") or None
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
# Captures run on workers placed in the SOC network (docs/capture.md): their own queue.
CELERY_TASK_ROUTES = {"evidence.tasks.capture_vm_disks": {"queue": "capture"}}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "verify-audit-chain": {
        "task": "audit.tasks.verify_audit_chain",
        "schedule": env_int("CUSTODIA_AUDIT_VERIFY_SECONDS", 24 * 3600, minimum=60),
    },
    "write-audit-checkpoint": {
        "task": "audit.tasks.write_audit_checkpoint",
        "schedule": CUSTODIA_AUDIT_CHECKPOINT_SECONDS,
    },
    "verify-sealed-evidence": {
        "task": "evidence.tasks.verify_all_evidence",
        "schedule": env_int("CUSTODIA_EVIDENCE_VERIFY_SECONDS", 7 * 24 * 3600, minimum=60),
    },
    # Fails the extraction runs whose lease ran out (issue #17).
    "reap-extraction-runs": {
        "task": "search.tasks.reap_extraction_runs",
        "schedule": max(CUSTODIA_EXTRACTION_LEASE_SECONDS // 2, 15),
    },
    # Writes the count of each finished window of link guesses (evidence/services/link_guesses.py).
    # Alerts: deliveries whose retries gave up are queued again; the append-only triggers are checked.
    "requeue-alert-deliveries": {
        "task": "alerts.tasks.requeue_alert_deliveries",
        "schedule": env_int("CUSTODIA_ALERTS_REQUEUE_SECONDS", 300, minimum=10),
    },
    "check-audit-triggers": {
        "task": "alerts.tasks.check_audit_triggers",
        "schedule": env_int("CUSTODIA_ALERTS_TRIGGER_CHECK_SECONDS", 3600, minimum=60),
    },
    "close-link-guess-windows": {
        "task": "evidence.tasks.close_link_guess_windows",
        "schedule": CUSTODIA_LINK_GUESS_WINDOW_SECONDS,
    },
}

# --- logging -------------------------------------------------------------------------------------
# Every handler carries the privacy filter: tagged values in a line ([user>…], Tagged(…) arguments) are
# replaced as CUSTODIA_PRIVACY_POLICY says before any handler formats the line (docs/privacy.md).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"privacy": {"()": "audit.privacy.PrivacyLogFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["privacy"]}},
    "root": {"handlers": ["console"], "level": env_str("CUSTODIA_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
