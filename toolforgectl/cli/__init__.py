"""The toolforgectl command line: one typer sub-app per noun."""
