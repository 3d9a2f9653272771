"""The read side: projections, their document store, queries, policies and the runner."""

from facta.projections.errors import CommandRefused, LeaseLost, ProjectionNotFound
from facta.projections.inline import InlineProjections, compose_hooks
from facta.projections.policy import Policy, PolicyContext
from facta.projections.projection import Projection
from facta.projections.read_store import Documents, ReadStore
from facta.projections.runner import ProjectionRunner
from facta.projections.session import Session
from facta.projections.status import DeadLetter, ProjectionStatus, RebuildProgress
from facta.store.documents import Condition, DocumentSpec, Page

__all__ = [
    "CommandRefused",
    "Condition",
    "DeadLetter",
    "DocumentSpec",
    "Documents",
    "InlineProjections",
    "LeaseLost",
    "Page",
    "Policy",
    "PolicyContext",
    "Projection",
    "ProjectionNotFound",
    "ProjectionRunner",
    "ProjectionStatus",
    "ReadStore",
    "RebuildProgress",
    "Session",
    "compose_hooks",
]
