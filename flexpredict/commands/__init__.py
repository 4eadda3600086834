"""CLI command groups. Each module defines a Typer app or commands and imports heavy libraries lazily."""
