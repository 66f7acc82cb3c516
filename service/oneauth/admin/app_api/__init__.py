"""Route modules of an app's admin tree, each ``routes() -> list[BaseRoute]``."""
