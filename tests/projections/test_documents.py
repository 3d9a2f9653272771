"""Document specs: what can be indexed. What the document store does with them is the
conformance suite's (facta.testing.conformance.ReadModelContract, on every engine)."""

from __future__ import annotations

import pytest

from facta.projections import DocumentSpec
from facta.testing.conformance.read_models import Item


def test_a_document_spec_refuses_indexes_that_cannot_be_columns() -> None:
    with pytest.raises(TypeError, match="no field"):
        DocumentSpec(Item, ["missing"])
    with pytest.raises(TypeError, match="must be str, int"):
        DocumentSpec(Item, ["note"])
