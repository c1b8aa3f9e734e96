"""Deterministic simulation runtime: virtual-time loop, sandbox, simulated cluster."""
