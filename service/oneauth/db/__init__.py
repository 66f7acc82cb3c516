"""Database access: naming, SQL templates, migrations, the connection router."""
