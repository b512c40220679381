"""The MQTT ingest worker: gateway messages in, FHIR Observations and acks out."""
