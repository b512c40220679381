"""Self-management action plans: what the patient and the service do in each zone."""
