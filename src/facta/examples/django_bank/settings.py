"""Django settings of the example: no database of Django's own (facta's store is the
database), no sessions, no templates; JSON views only."""

from __future__ import annotations

import os
import secrets

# The example keeps no secret: nothing is signed. A deployment sets its own.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(32)
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
ROOT_URLCONF = "facta.examples.django_bank.urls"
INSTALLED_APPS = ["facta.examples.django_bank"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
APPEND_SLASH = False
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024  # a command is a few hundred bytes

FACTA_STORE = os.environ.get("FACTA_STORE", "sqlite:///facta.db")
"""The store the bank example uses too (its default: a SQLite file in the working directory)."""
