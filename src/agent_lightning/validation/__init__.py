"""Task validation, security scanning and result checks (see README "Validation and PII masking")."""
