"""Celery app, beat schedule and tasks."""
