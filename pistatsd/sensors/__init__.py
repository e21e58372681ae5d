"""User-defined sensors: definitions, confinement, readings, persistence and the REST resource."""
