"""The example as a Django app (so that Django finds its settings module's package)."""

from __future__ import annotations

from django.apps import AppConfig


class BankConfig(AppConfig):
    """The bank example's app."""

    name = "facta.examples.django_bank"
    label = "facta_django_bank"
