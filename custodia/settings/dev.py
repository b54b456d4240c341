"""`make run`: the embedded default on one laptop, debug pages on."""

import os

os.environ.setdefault("DJANGO_DEBUG", "true")

from custodia.settings.base import *
