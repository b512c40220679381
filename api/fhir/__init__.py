"""The FHIR R4 facade under /fhir."""
