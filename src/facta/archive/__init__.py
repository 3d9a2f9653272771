"""Cold storage for archived events (:mod:`facta.archive.cold`) and the event store that
reads it through (:mod:`facta.archive.reading`); the archiver is
:mod:`facta.lifecycle.archiving`."""
