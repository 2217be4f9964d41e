"""The rendered Envoy bootstrap and the compiled plugin configuration."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import binaries_or_fail
from warden_stack import (
    EXAMPLE_POLICY,
    HEADER_MODES,
    UPSTREAM_PROTOCOLS,
    free_port,
    render_envoy_config,
    run_cli,
    validate_envoy_config,
)


# Where Debian keeps the system CA bundle (what a TLS cluster trusts by default).
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def test_rendered_example_config_passes_envoy_validate(tmp_path):
    binaries_or_fail()
    config = render_envoy_config(
        EXAMPLE_POLICY, listen_port=free_port(), upstream_port=free_port(), admin_port=free_port()
    )
    path = tmp_path / "envoy.yaml"
    path.write_text(config)
    result = validate_envoy_config(path)
    assert result.returncode == 0, f"envoy --mode validate failed:\n{result.stdout}\n{result.stderr}"


def plugin_configuration(config: str) -> dict:
    """The filter's configuration in a rendered bootstrap: a JSON text in a
    single-quoted YAML scalar (a quote inside is written twice)."""
    match = re.search(
        r"configuration:\n\s+'@type': type.googleapis.com/google.protobuf.StringValue\n\s+value: '([^\n]*)'\n", config
    )
    assert match, config
    return json.loads(match.group(1).replace("''", "'"))


@pytest.mark.parametrize("upstream_protocol", UPSTREAM_PROTOCOLS)
@pytest.mark.parametrize("header_mode", HEADER_MODES)
def test_each_header_mode_and_upstream_protocol_passes_envoy_validate(tmp_path, header_mode, upstream_protocol):
    """`--header-mode hold` (only) renders allow_on_headers_stop_iteration, and
    writes the mode into the filter's configuration; `--upstream-protocol h2c`
    makes the MCP server's cluster HTTP/2; header names with underscores are
    dropped in each. Envoy accepts all four."""
    binaries_or_fail()
    config = render_envoy_config(
        EXAMPLE_POLICY,
        listen_port=free_port(),
        upstream_port=free_port(),
        admin_port=free_port(),
        header_mode=header_mode,
        upstream_protocol=upstream_protocol,
    )
    assert ("allow_on_headers_stop_iteration: true" in config) == (header_mode == "hold"), config
    assert plugin_configuration(config)["filter"]["header_mode"] == header_mode
    assert ("http2_protocol_options: {}" in config) == (upstream_protocol == "h2c"), config
    assert "codec_type: AUTO" in config, config
    # Header names with underscores (`x_warden_subject`) never reach a filter.
    assert "headers_with_underscores_action: DROP_HEADER" in config, config
    path = tmp_path / "envoy.yaml"
    path.write_text(config)
    result = validate_envoy_config(path)
    assert result.returncode == 0, f"envoy --mode validate failed:\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize(
    "cluster",
    [
        "idp=sso.example.com:443",
        "idp=10.0.0.7:8443,tls,sni=sso.example.com",
        "idp=sso.example.com:8443,tls,ca={ca}",
        "idp=[::1]:443",
        "idp=keys.internal:80",
    ],
)
def test_dns_and_tls_clusters_pass_envoy_validate(tmp_path, cluster):
    """Every shape of `--cluster` renders a bootstrap Envoy accepts: a host
    name as LOGICAL_DNS, an IP address as STATIC, TLS with the system CA
    bundle or a given one (validate opens it: a real file here)."""
    binaries_or_fail()
    if not SYSTEM_CA_BUNDLE.exists():
        pytest.fail(f"{SYSTEM_CA_BUNDLE} is missing: install the ca-certificates package")
    ca = tmp_path / "ca.pem"
    ca.write_bytes(SYSTEM_CA_BUNDLE.read_bytes())
    name, _, spec = cluster.format(ca=ca).partition("=")
    config = render_envoy_config(
        EXAMPLE_POLICY,
        listen_port=free_port(),
        upstream_port=free_port(),
        admin_port=free_port(),
        clusters={name: spec},
    )
    host = spec.split(",")[0].rsplit(":", 1)[0].strip("[]")
    is_ip = host.replace(".", "").isdigit() or ":" in host
    assert ("type: LOGICAL_DNS" in config) == (not is_ip), config
    assert ("envoy.transport_sockets.tls" in config) == (spec.split(",")[0].endswith(":443") or "," in spec), config
    path = tmp_path / "envoy.yaml"
    path.write_text(config)
    result = validate_envoy_config(path)
    assert result.returncode == 0, f"envoy --mode validate failed:\n{result.stdout}\n{result.stderr}\n{config}"


def test_the_example_policy_renders_stream_mode_by_default():
    binaries_or_fail()
    config = render_envoy_config(EXAMPLE_POLICY, listen_port=1, upstream_port=2, admin_port=3)
    assert "allow_on_headers_stop_iteration: true" not in config
    assert plugin_configuration(config)["filter"]["header_mode"] == "stream"


def test_compile_prints_plugin_configuration_json():
    binaries_or_fail()
    output = run_cli("compile", EXAMPLE_POLICY)
    config = json.loads(output)
    assert isinstance(config, dict) and config, output[:500]
    # Every rule id of the example policy is in the compiled form.
    for rule in ("search-docs", "no-agent-deletes", "agents-deploy-staging-for-eng"):
        assert rule in output, f"rule {rule} missing from the compiled configuration"


def test_validate_rejects_a_broken_config(tmp_path):
    """Guards the test above: the validate run can fail."""
    path = tmp_path / "broken.yaml"
    path.write_text("static_resources: {listeners: [{name: x, address: {socket_address: {port_value: 1}}, nope: 1}]}\n")
    result = validate_envoy_config(path)
    assert result.returncode != 0
