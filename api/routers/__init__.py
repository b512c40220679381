"""JSON routers, one per domain."""
