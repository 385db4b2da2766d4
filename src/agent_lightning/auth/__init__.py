"""Users, API keys and access tokens (see docs "Authentication and roles")."""
