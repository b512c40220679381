"""Gateways: the last status (online/offline) each one announced."""
