"""Users, API keys and access tokens (see README "Authentication and roles")."""
