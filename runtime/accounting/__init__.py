"""Accounting: the journal (double entry, balanced per currency), the chart of accounts as data,
and posting batches as files (DATEV, generic CSV, JSON lines). Pure: ``store.accounting`` writes
what these functions decide."""
