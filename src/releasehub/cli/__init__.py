"""The `releasehub` command line: one module per command group."""
