"""The bank service of the seed as a Django project, on facta.sync: an ordinary Django user
of facta, on the same store as the bank example (its ``accounts`` read model is kept inline
here too, so both services may serve one database).

Run it (Django is the ``facta[django]`` extra)::

    FACTA_STORE=sqlite:///facta.db DJANGO_SETTINGS_MODULE=facta.examples.django_bank.settings \\
        python -m django runserver

Routes: ``POST /accounts/<id>`` with a command (``{"type": "Deposit", "amount": 5.0}``),
``GET /accounts/<id>`` the account, ``GET /accounts`` a page of the read model.
"""
