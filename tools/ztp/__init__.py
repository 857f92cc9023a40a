"""ZTP host tools: virtual modem and SAFE2 SIM, TLS 1.3 PSK engine, gateway, service."""

__version__ = "0.1.0"
