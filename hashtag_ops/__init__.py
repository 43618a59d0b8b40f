"""Operator tooling shared by the deployables: structured logging, dead-letter redrive, moderation."""
