"""InfluxDB reporting: line protocol, a bounded queue with a spool, and the reporter service."""
