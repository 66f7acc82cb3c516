"""Organizations and roles inside one app (issue 13)."""
