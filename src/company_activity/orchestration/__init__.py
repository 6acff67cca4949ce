"""Adapters that let an orchestrator run the master pipeline's steps.

- :mod:`company_activity.orchestration.dagster`: daily partitioned Dagster assets, a job, a 00:00 UTC
  schedule, blocking asset checks and a run-failure sensor (``pip install 'company-activity[dagster]'``).

Each adapter imports its orchestrator itself; nothing else in the package imports one.
"""
