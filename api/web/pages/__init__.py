"""The staff page's routes: one module per page, each with its `router` (found by api.web.router)."""
