"""trimix mix node and gateway daemon.

Modules: `link` (the sans-I/O Noise link state machine: handshake and fixed-size frames) and
`link_driver` (its Trio driver: outgoing and incoming connections, timeouts, reconnects).
"""
