"""The example's routes; unknown paths answer with a JSON 404, like the views' errors."""

from __future__ import annotations

from django.urls import path

from facta.examples.django_bank import views

urlpatterns = [
    path("accounts", views.accounts, name="accounts"),
    path("accounts/<str:account_id>", views.account, name="account"),
]

handler400 = views.bad_request
handler404 = views.not_found
handler500 = views.server_error
