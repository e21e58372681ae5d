"""Alerts: rules on the series of the snapshot, their states, and what changes them (SPEC §13)."""
