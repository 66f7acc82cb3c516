"""The ``oneauth`` command line: one module per command group."""
