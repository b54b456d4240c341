import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "custodia.settings.dev")  # as manage.py; production sets it

app = Celery("custodia")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
