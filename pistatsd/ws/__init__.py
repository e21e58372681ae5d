"""WebSockets: C{/ws/echo} and C{/ws/broadcast}, bounded and mounted in the resource tree."""
