"""The gateway's metrics: plain numbers exposed through a collector, in Prometheus' format."""

from prometheus_client.parser import text_string_to_metric_families
from ztp.gateway import GatewayMetrics


def _families(m: GatewayMetrics) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(m.exposition().decode())}


def test_names_types_and_labels_as_prometheus_client_spells_them():
    m = GatewayMetrics()
    fams = _families(m)
    assert fams["ztp_gateway_connections"].type == "counter"
    assert fams["ztp_gateway_connections_active"].type == "gauge"
    assert fams["ztp_gateway_handshake_seconds"].type == "histogram"
    assert fams["ztp_gateway_upstream_seconds"].type == "histogram"
    assert len(fams) == 14
    text = m.exposition().decode()
    assert "ztp_gateway_connections_total 0.0" in text
    assert "# TYPE ztp_gateway_requests_total counter" in text
    assert "_created" not in text  # documented: the _created series are not exported


def test_counters_histograms_and_gauge_values():
    m = GatewayMetrics()
    m.connections.inc()
    m.connections.inc()
    m.labelled(m.requests, "200").inc()
    m.labelled(m.requests, "200").inc()
    m.labelled(m.requests, "429").inc()
    m.connections_active.set_function(lambda: 7)
    for seconds in (0.001, 0.005, 0.0051, 1, 100):
        m.handshake_seconds.observe(seconds)
    get = m.registry.get_sample_value
    assert get("ztp_gateway_connections_total") == 2
    assert get("ztp_gateway_requests_total", {"status": "200"}) == 2
    assert get("ztp_gateway_requests_total", {"status": "429"}) == 1
    assert get("ztp_gateway_connections_active") == 7
    bucket = "ztp_gateway_handshake_seconds_bucket"
    assert get(bucket, {"le": "0.005"}) == 2  # "less than or equal": 0.005 is in it
    assert get(bucket, {"le": "0.01"}) == 3
    assert get(bucket, {"le": "1.0"}) == 4
    assert get(bucket, {"le": "60.0"}) == 4
    assert get(bucket, {"le": "+Inf"}) == 5
    assert get("ztp_gateway_handshake_seconds_count") == 5
    assert abs(get("ztp_gateway_handshake_seconds_sum") - 101.0111) < 1e-9


def test_label_count_is_checked():
    m = GatewayMetrics()
    try:
        m.labelled(m.handshakes, "psk_ke")
    except ValueError as exc:
        assert "mode" in str(exc)
    else:
        raise AssertionError("a missing label value was accepted")


def test_two_gateways_have_registries_of_their_own():
    a, b = GatewayMetrics(), GatewayMetrics()
    a.connections.inc()
    assert a.registry.get_sample_value("ztp_gateway_connections_total") == 1
    assert b.registry.get_sample_value("ztp_gateway_connections_total") == 0
