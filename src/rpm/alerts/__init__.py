"""The alert queue: lifecycle, evidence, escalation and the event stream."""
