"""The command line (placeholder, filled in by the pipeline work)."""

import click


@click.group()
def main() -> None:
    """company-activity: the Company Activity Pipeline."""
