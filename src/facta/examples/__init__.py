"""Example services built on facta as any user would build them: the seed's bank accounts
(``facta.examples.bank``, what ``facta serve`` runs by default) and a users directory with
unique e-mail addresses (``facta.examples.users``). They import only facta's public API."""
