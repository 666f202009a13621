"""Pipelines, stages, deals, lead capture and stage automations."""
