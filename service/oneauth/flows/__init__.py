"""Flows orchestrate the domains (identity, sessions, tokens) for one request."""
