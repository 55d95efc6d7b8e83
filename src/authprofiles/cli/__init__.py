"""The `authprofiles` command: Typer, one module per noun."""
