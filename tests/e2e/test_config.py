"""The rendered Envoy bootstrap and the compiled plugin configuration."""

from __future__ import annotations

import json

from conftest import binaries_or_fail
from warden_stack import EXAMPLE_POLICY, free_port, render_envoy_config, run_cli, validate_envoy_config


def test_rendered_example_config_passes_envoy_validate(tmp_path):
    binaries_or_fail()
    config = render_envoy_config(
        EXAMPLE_POLICY, listen_port=free_port(), upstream_port=free_port(), admin_port=free_port()
    )
    path = tmp_path / "envoy.yaml"
    path.write_text(config)
    result = validate_envoy_config(path)
    assert result.returncode == 0, f"envoy --mode validate failed:\n{result.stdout}\n{result.stderr}"


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
