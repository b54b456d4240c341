"""Production: DEBUG off, secure cookies, HSTS, hosts from DJANGO_ALLOWED_HOSTS (all enforced in base)."""

import os

os.environ["DJANGO_DEBUG"] = "false"

from custodia.settings.base import *
