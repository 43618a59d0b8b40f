"""Beam pipelines: shared transforms (transforms.py), the streaming job, the batch recount/backfill."""
