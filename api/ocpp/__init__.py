"""The OCPP gateway (issue 4): chargers connect over OCPP 1.6J or 2.0.1, authorize, charge and
report; every finished transaction becomes exactly one rated ``ChargingSession``.

``server`` is the WebSocket server and handshake, ``handlers`` the per-version protocol handlers,
``service`` what the gateway stores (idempotent writes), ``access`` who may charge where, and
``dbworker`` the group-committing database thread behind them.
"""

from __future__ import annotations

from api.ocpp.server import (
                             Gateway,
                             GatewaySettings,
                             NotConnected,
                             current_gateway,
                             hash_password,
                             start_gateway_thread,
)

__all__ = ["Gateway", "GatewaySettings", "NotConnected", "current_gateway", "hash_password", "start_gateway_thread"]
