"""Control API (FastAPI): operators' routes, bearer-token auth, OpenAPI schema."""
