"""GatewayConfig: the TLS policy defaults are the engine's, and the engine gets what is set."""

from __future__ import annotations

import dataclasses

import pytest
from ztp.gateway import GatewayConfig
from ztp.tls import CipherSuite, KeyExchangeMode, ServerConfig


def test_tls_defaults_are_the_engines():
    engine, gateway = ServerConfig(), GatewayConfig()
    assert gateway.key_exchange_modes == engine.key_exchange_modes
    assert gateway.cipher_suites == engine.cipher_suites
    assert gateway.max_psk_candidates == engine.max_psk_candidates


def test_tls_config_carries_the_gateway_policy():
    config = GatewayConfig(
        key_exchange_modes=(KeyExchangeMode.PSK_KE,),
        cipher_suites=(CipherSuite.TLS_AES_128_CCM_SHA256,),
        max_psk_candidates=3,
    )
    tls = config.tls_config()
    assert tls.psk_lookup is None  # keys come from the gateway's PSK cache, never the engine
    assert tls.key_exchange_modes == (KeyExchangeMode.PSK_KE,)
    assert tls.cipher_suites == (CipherSuite.TLS_AES_128_CCM_SHA256,)
    assert tls.max_psk_candidates == 3


@pytest.mark.parametrize(
    "field", ["max_connections", "write_timeout_s", "psk_ttl_s", "shutdown_grace_s"]
)
def test_bad_values_refused(field):
    bad = {"max_connections": 0, "write_timeout_s": 0, "psk_ttl_s": 0, "shutdown_grace_s": -1}
    with pytest.raises(ValueError):
        dataclasses.replace(GatewayConfig(), **{field: bad[field]})
