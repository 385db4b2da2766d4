"""Secrets the operator and tenant admins store for the platform to use (provider keys, MCP headers)."""
