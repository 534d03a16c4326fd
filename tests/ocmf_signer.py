"""The tests' signing meter is the product's simulated one (``runtime.ocmf_meter``)."""

from runtime.ocmf_meter import Meter, tamper

__all__ = ["Meter", "tamper"]
