"""HTTP plumbing shared by every endpoint: middleware, errors, request helpers."""
