"""Tasks, SLA deadlines, escalation and assignment."""
