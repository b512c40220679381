"""The staff API: FastAPI app, JSON endpoints under /api/v1 and the FHIR R4 facade."""
