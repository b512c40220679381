"""A patient's course: the dashboard (latest values, active alerts, sparklines) and trends."""
