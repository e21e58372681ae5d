"""Collectors for the whole machine: one module per part of the snapshot (SPEC §11)."""
