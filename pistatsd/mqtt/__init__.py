"""MQTT and Home Assistant: the machine's state published to a broker, with discovery.

Only L{pistatsd.mqtt.client} imports the MQTT library, and only
L{pistatsd.mqtt.wiring} imports that module, when C{--mqtt} is given: a daemon
without MQTT never loads it.
"""
