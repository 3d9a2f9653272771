"""Random (version 4) UUIDs as strings, made without building a uuid.UUID object.

Every command makes at least two (a correlation id and an event id); formatting 16 random
bytes directly costs a fraction of ``str(uuid.uuid4())``.
"""

from __future__ import annotations

import os

_VARIANT = "89ab89ab89ab89ab"  # the variant nibble's top bits must be 10


def new_uuid() -> str:
    """A random RFC 4122 version-4 UUID in its canonical 36-character form."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16)]}{h[17:20]}-{h[20:]}"
