"""Notifications: carrying alert changes to people (webhook, ntfy, email), without blocking."""
