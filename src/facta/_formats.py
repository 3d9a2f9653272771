"""Which JSON format a class is stored in, found once per class.

msgspec classes (and anything else msgspec encodes) are the default, and callers keep their
own msgspec encoders and decoders for them. A pydantic model gets the format of
:mod:`facta.pydantic` instead. Callers ask here once per class and keep the answer, so that
no hot loop asks what kind of class it holds.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NamedTuple


class Format(NamedTuple):
    """How values of one class become JSON bytes and come back.

    ``decode`` raises ``msgspec.ValidationError`` (a ``msgspec.DecodeError``) when the bytes
    do not fit the class, as a msgspec decoder does, so that callers catch one error type.
    """

    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]


def model_format(cls: Any, tag: str | None = None) -> Format | None:
    """The format of ``cls`` when it is a pydantic model (written ``{"type": tag, ...}``
    when ``tag`` is given), else None: msgspec handles it.

    pydantic is never imported here: a class can only be a pydantic model once pydantic is.
    """
    pydantic = sys.modules.get("pydantic")
    if pydantic is None or not (isinstance(cls, type) and issubclass(cls, pydantic.BaseModel)):
        return None
    from facta.pydantic import json_format

    return json_format(cls, tag)
