"""Personal data that can be forgotten (crypto-shredding).

Event fields marked :class:`~facta.Personal` are encrypted on append with their data
subject's key (AES-256-GCM), and decrypted on every read. Keys live in the engine's own
table (:mod:`facta.store.keys`), optionally wrapped by a master key. Forgetting a subject
deletes its keys: from then on every read path yields its fields' redacted values
(:func:`facta.forgetting.forget`, ``facta forget SUBJECT``). See the how-to page
"Forget personal data".

The public names are re-exported from ``facta``; the modules here are :mod:`~facta.personal.fields`
(which fields, for the codec), :mod:`~facta.personal.envelope` (the stored form),
:mod:`~facta.personal.vault` (keys) and :mod:`~facta.personal.sealed` (the engine's wrappers).
Nothing is imported here: the store imports its wrappers, and they import the store.
"""
