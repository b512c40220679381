"""Server-side tests of the staff web page, over ASGI."""
