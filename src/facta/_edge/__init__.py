"""The framework-neutral part of facta's HTTP edges (internal): what the aggregate routes do,
how a request body and the headers and query parameters are parsed, the JSON error body and
its statuses, and the Runtime that holds the open Application. The Litestar layer
(:mod:`facta.http`) and the FastAPI layer (:mod:`facta.fastapi`) are thin around it, so both
answer the same request the same way; it imports neither framework."""
