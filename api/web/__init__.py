"""The staff web page: server-rendered templates with htmx, on the same services as the API."""
