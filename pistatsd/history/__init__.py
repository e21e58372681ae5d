"""Durable, bounded, rolled-up history of the snapshot's numbers (SPEC §12)."""
