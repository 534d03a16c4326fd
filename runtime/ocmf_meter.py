"""A simulated legal-for-trade meter that signs OCMF records as chargers send them (Eichrecht), for
the demo's charger and the tests: the key is made here (``cryptography``; from ``seed`` when given,
so a demo run has the same key each time), the record is the exact text a meter writes."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "secp192r1": ec.SECP192R1, "secp256r1": ec.SECP256R1, "secp384r1": ec.SECP384R1,
    "brainpool256r1": ec.BrainpoolP256R1, "brainpool384r1": ec.BrainpoolP384R1}


@dataclass
class Meter:
    serial: str = "EMH-1234567"
    curve: str = "secp256r1"
    encoding: str = "hex"  # SE
    seed: int | None = None  # a fixed private key (the demo's), else a fresh one
    key: ec.EllipticCurvePrivateKey = field(init=False)

    def __post_init__(self) -> None:
        curve = _CURVES[self.curve]()
        self.key = ec.generate_private_key(curve) if self.seed is None else ec.derive_private_key(self.seed, curve)

    @property
    def public_key_hex(self) -> str:
        return self.key.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo).hex().upper()

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(bytes.fromhex(self.public_key_hex)).decode()

    def payload(self, readings: list[tuple[str, str, Decimal | str]], *, pagination: str = "T1",
                **extra: Any) -> str:
        """The payload section: ``readings`` are (TM, TX, RV in kWh)."""
        p: dict[str, Any] = {"FV": "1.0", "GI": "ABL SBC-301", "GS": "808829900001", "GV": "1.4p3", "PG": pagination,
                             "MV": "Phoenix Contact", "MM": "EEM-350-D-MCB", "MS": self.serial, "MF": "1.0",
                             "IS": True, "IL": "VERIFIED", "IF": ["RFID_PLAIN", "OCPP_RS_TLS"], "IT": "ISO14443",
                             "ID": "1F2D3A4B", "CT": "EVSEID", "CI": "DE*ABC*E123*1",
                             "RD": [{"TM": tm, "TX": tx, "RV": float(Decimal(rv)) if "." in str(rv) else int(rv),
                                     "RI": "1-b:1.8.0", "RU": "kWh", "RT": "AC", "EF": "", "ST": "G"}
                                    for tm, tx, rv in readings], **extra}
        return json.dumps(p, separators=(",", ":"))

    def sign(self, payload: str) -> str:
        sa = f"ECDSA-{self.curve}-SHA256"
        der = self.key.sign(payload.encode(), ec.ECDSA(hashes.SHA256()))
        sd = base64.b64encode(der).decode() if self.encoding == "base64" else der.hex().upper()
        sig: dict[str, str] = {"SA": sa, "SD": sd}
        if self.encoding == "base64":
            sig["SE"] = "base64"
        return f"OCMF|{payload}|{json.dumps(sig, separators=(',', ':'))}"

    def record(self, readings: list[tuple[str, str, Decimal | str]], **kw: Any) -> str:
        return self.sign(self.payload(readings, **kw))


def tamper(record: str, old: str, new: str) -> str:
    """The record with ``old`` replaced by ``new`` in its payload, the signature left as it was."""
    if old not in record:
        raise ValueError(f"{old!r} is not in the record")
    return record.replace(old, new, 1)
