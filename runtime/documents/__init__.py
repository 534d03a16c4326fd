"""Documents: one model, many formats (UBL, CII, PDF, Factur-X)."""
