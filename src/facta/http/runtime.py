"""Kept for imports of ``facta.http.runtime``: the Runtime lives in the framework-neutral edge."""

from facta._edge.runtime import Runtime

__all__ = ["Runtime"]
