"""OAuth 2.0 / OpenID Connect for each app: clients, endpoints, discovery."""
