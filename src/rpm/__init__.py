"""Remote patient monitoring: the domain core shared by the ingest worker and the staff API."""
