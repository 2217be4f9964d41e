"""The rendered Envoy bootstrap and the compiled plugin configuration."""

from __future__ import annotations

import json
import re

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
    """The filter's configuration in a rendered bootstrap (a JSON string in YAML)."""
    match = re.search(r"configuration:\n\s+\"@type\": [^\n]+\n\s+value: (\"[^\n]*\")\n", config)
    assert match, config
    return json.loads(json.loads(match.group(1)))


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
