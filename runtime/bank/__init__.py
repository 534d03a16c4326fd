"""Bank files: camt statements read, pain files built (see camt.py)."""
