"""Task validation, security scanning and result checks (see docs "Validation and PII masking")."""
