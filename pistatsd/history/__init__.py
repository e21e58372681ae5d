"""History that survives restarts: series names, the store, and what the web layer reads."""
