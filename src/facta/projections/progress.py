"""Progress of a rebuild whose partitions run at once, reported as one."""

from __future__ import annotations

from collections.abc import Callable

from facta.projections.status import RebuildProgress

ProgressCallback = Callable[[RebuildProgress], None]


class Combined:
    """One progress report for a rebuild whose partitions run at once: the events handled
    and the lowest position reached, over all of them."""

    def __init__(self, progress: ProgressCallback, partitions: int) -> None:
        self.progress = progress
        self.latest: dict[int, RebuildProgress] = {}
        self.partitions = partitions

    def reporter(self, partition: int) -> ProgressCallback:
        def report(update: RebuildProgress) -> None:
            self.latest[partition] = update
            if len(self.latest) < self.partitions and self.partitions > 1:
                return  # every partition reports before the first combined report
            updates = list(self.latest.values())
            self.progress(
                RebuildProgress(
                    update.name,
                    sum(u.events for u in updates),
                    min(u.position for u in updates),
                    max(u.head for u in updates),
                    all(u.done for u in updates),
                )
            )

        return report
