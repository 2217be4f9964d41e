//! An Envoy bootstrap that runs the filter in front of one MCP server.
//! The same text is what `envoy/example.yaml` holds for the example policy.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, anyhow};
use policy_sdk::PolicyDocument;
use policy_sdk::config::HeaderMode;

pub struct Address {
    pub host: String,
    pub port: u16,
}

impl Address {
    fn parse(what: &str, text: &str) -> anyhow::Result<Self> {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| anyhow!("--{what}: `{text}` is not HOST:PORT"))?;
        let port = port
            .parse()
            .with_context(|| format!("--{what}: `{port}` is not a port"))?;
        Ok(Self {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
        })
    }
}

pub struct Addresses {
    pub listen: Address,
    pub upstream: Address,
    pub admin: Address,
}

impl Addresses {
    pub fn parse(listen: &str, upstream: &str, admin: &str) -> anyhow::Result<Self> {
        Ok(Self {
            listen: Address::parse("listen", listen)?,
            upstream: Address::parse("upstream", upstream)?,
            admin: Address::parse("admin", admin)?,
        })
    }
}

/// YAML double-quoted scalar for any text (JSON string syntax is a subset).
fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// An extra cluster the filter calls (`jwks_fetch` or revocation `remote`
/// sources name it), given as `NAME=HOST:PORT`.
pub struct Cluster {
    pub name: String,
    pub address: Address,
}

impl Cluster {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let (name, address) = text
            .split_once('=')
            .ok_or_else(|| anyhow!("--cluster: `{text}` is not NAME=HOST:PORT"))?;
        if name.is_empty()
            || name == "mcp_server"
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(anyhow!("--cluster: `{name}` is not a usable cluster name"));
        }
        Ok(Self {
            name: name.to_owned(),
            address: Address::parse("cluster", address)?,
        })
    }
}

/// Where Envoy gets the filter module.
pub enum WasmCode {
    /// A file Envoy opens (`vm_config.code.local`).
    Local(std::path::PathBuf),
    /// An `http://` URL Envoy fetches at start-up (`vm_config.code.remote`),
    /// accepting the module only if its SHA-256 is `sha256`.
    Remote(RemoteWasm),
}

/// The name of the cluster Envoy fetches a remote module through.
pub const WASM_CLUSTER: &str = "warden_wasm";

pub struct RemoteWasm {
    pub url: String,
    pub address: Address,
    pub sha256: String,
}

impl RemoteWasm {
    /// `url` must be `http://HOST:PORT/PATH` (or without port: 80); `sha256`
    /// the module's digest as 64 hex digits (a `sha256:` prefix is dropped).
    pub fn parse(url: &str, sha256: &str) -> anyhow::Result<Self> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            anyhow!("--wasm-url: `{url}` is not an http:// URL (https is not rendered: give Envoy a cluster with TLS yourself)")
        })?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.is_empty() || authority.contains('@') {
            return Err(anyhow!("--wasm-url: `{url}` has no usable host"));
        }
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.contains(']'));
        let address = if has_port {
            Address::parse("wasm-url", authority)?
        } else {
            Address::parse("wasm-url", &format!("{authority}:80"))?
        };
        let sha256 = sha256
            .strip_prefix("sha256:")
            .unwrap_or(sha256)
            .to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(anyhow!(
                "--wasm-sha256: `{sha256}` is not a SHA-256 digest (64 hex digits)"
            ));
        }
        Ok(Self {
            url: url.to_owned(),
            address,
            sha256,
        })
    }

    /// STATIC for an IP address, STRICT_DNS for a host name.
    fn cluster_type(&self) -> &'static str {
        if self.address.host.parse::<std::net::IpAddr>().is_ok() {
            "STATIC"
        } else {
            "STRICT_DNS"
        }
    }
}

/// The `code:` block of the wasm filter's `vm_config`.
fn code_lines(code: &WasmCode) -> anyhow::Result<String> {
    Ok(match code {
        WasmCode::Local(path) => {
            let path = path
                .to_str()
                .ok_or_else(|| anyhow!("--wasm: path is not UTF-8"))?;
            format!(
                r#"                  code:
                    local:
                      filename: {path}
"#,
                path = quoted(path)
            )
        }
        WasmCode::Remote(remote) => format!(
            r#"                  # Fetched by Envoy at start-up and accepted only with this
                  # SHA-256; if it cannot be had, the filter is not loaded and
                  # requests are refused (fail_open: false).
                  code:
                    remote:
                      http_uri:
                        uri: {uri}
                        cluster: {cluster}
                        timeout: 10s
                      sha256: {sha256}
                      retry_policy:
                        num_retries: 2
"#,
            uri = quoted(&remote.url),
            cluster = WASM_CLUSTER,
            sha256 = quoted(&remote.sha256),
        ),
    })
}

/// The cluster a remote module is fetched through (none for a local file).
fn wasm_cluster_lines(code: &WasmCode) -> String {
    match code {
        WasmCode::Local(_) => String::new(),
        WasmCode::Remote(remote) => format!(
            "  # Where Envoy fetches the filter module (vm_config.code.remote).\n{}",
            cluster_lines(
                WASM_CLUSTER,
                remote.cluster_type(),
                &remote.address.host,
                remote.address.port
            )
        ),
    }
}

/// One cluster of a single endpoint, in the bootstrap's `clusters` list.
fn cluster_lines(name: &str, kind: &str, host: &str, port: u16) -> String {
    format!(
        r#"  - name: {name}
    type: {kind}
    connect_timeout: 2s
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: {host}, port_value: {port} }}
"#
    )
}

/// How Envoy talks to the MCP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 (what most MCP servers speak).
    #[default]
    Http1,
    /// HTTP/2 without TLS, with prior knowledge (h2c).
    H2c,
}

/// Names of the clusters a policy's fetched documents need.
pub fn clusters_named_by(document: &PolicyDocument) -> Vec<String> {
    let identity = &document.identity;
    let mut names: Vec<String> = identity
        .issuers
        .iter()
        .filter_map(|i| i.jwks_fetch.as_ref())
        // Discovery may send the key-set fetch to other clusters, by host.
        .flat_map(|f| std::iter::once(&f.cluster).chain(f.key_set_hosts.values()))
        .cloned()
        .chain(
            identity
                .revocation
                .remote
                .as_ref()
                .map(|r| r.cluster.clone()),
        )
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The wasm filter's lines about request headers, by `filter.header_mode`:
/// Envoy must be told to honour a pause from the request-headers callback
/// exactly when the filter pauses there.
fn header_mode_lines(mode: HeaderMode) -> &'static str {
    match mode {
        HeaderMode::Hold => {
            r#"                # filter.header_mode: hold. Honour StopIteration from the
                # request-headers callback, so headers are held (not sent
                # upstream) while the body is judged (Envoy 1.35 or later).
                allow_on_headers_stop_iteration: true
"#
        }
        HeaderMode::Stream => {
            r#"                # filter.header_mode: stream. Request headers go upstream at
                # once; the filter holds the body until it is judged, so
                # allow_on_headers_stop_iteration is not needed (`hold` sets it).
"#
        }
    }
}

/// With `filter.audit_filter_state`, an access log that writes each
/// request's audit line from its filter state, whatever Envoy's log level:
/// to `audit_log`, or to Envoy's standard output. A request Warden did not
/// audit (a passthrough path) writes `-`.
fn audit_access_log_lines(
    document: &PolicyDocument,
    audit_log: Option<&Path>,
) -> anyhow::Result<String> {
    if !document.filter.audit_filter_state {
        return Ok(String::new());
    }
    let path = match audit_log {
        Some(path) => path
            .to_str()
            .ok_or_else(|| anyhow!("--audit-log: path is not UTF-8"))?,
        None => "/dev/stdout",
    };
    Ok(format!(
        r#"          # One audit line per request from Warden's filter state
          # (filter.audit_filter_state), independent of --log-level.
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {path}
              log_format:
                text_format_source:
                  inline_string: "%FILTER_STATE(wasm.warden_audit:PLAIN)%\n"
"#,
        path = quoted(path),
    ))
}

/// The MCP server cluster's protocol options.
fn upstream_protocol_lines(protocol: UpstreamProtocol) -> &'static str {
    match protocol {
        UpstreamProtocol::Http1 => "",
        UpstreamProtocol::H2c => {
            r#"    # The MCP server speaks HTTP/2 without TLS (h2c, prior knowledge).
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {}
"#
        }
    }
}

/// The bootstrap for `document` (its `filter.header_mode` decides whether
/// Envoy honours a header pause; the document is the plugin configuration).
pub fn bootstrap(
    addresses: &Addresses,
    wasm: &WasmCode,
    document: &PolicyDocument,
    upstream_protocol: UpstreamProtocol,
    clusters: &[Cluster],
    audit_log: Option<&Path>,
) -> anyhow::Result<String> {
    let access_log = audit_access_log_lines(document, audit_log)?;
    let code = code_lines(wasm)?;
    let plugin_config_json = serde_json::to_string(document)?;
    let Addresses {
        listen,
        upstream,
        admin,
    } = addresses;
    let mut out = String::new();
    write!(
        out,
        r#"# Envoy bootstrap generated by `warden envoy`: Warden in front of one MCP server.
admin:
  address:
    socket_address: {{ address: {admin_host}, port_value: {admin_port} }}
# Warden writes the labels of its metrics into their names
# (`decision=.=deny;.;…;.;warden_decisions_total`): these extract them, so
# /stats/prometheus shows `warden_decisions_total{{decision="deny",…}}`.
stats_config:
  stats_tags:
{stats_tags}static_resources:
  listeners:
  - name: mcp
    address:
      socket_address: {{ address: {listen_host}, port_value: {listen_port} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: mcp
          # An edge proxy: the client's own address is the remote address,
          # and Envoy replaces a client's x-request-id with its own rather
          # than trust it. Warden's audit carries its own id either way.
          use_remote_address: true
{access_log}          # HTTP/1.1, and HTTP/2 without TLS (h2c with prior knowledge).
          codec_type: AUTO
          # A WSGI or CGI upstream maps `x_warden_subject` and `x-warden-subject`
          # to the same variable (HTTP_X_WARDEN_SUBJECT): a client could forge
          # an identity header that way. Envoy drops header names with
          # underscores; Warden removes every spelling of its own as well.
          common_http_protocol_options:
            headers_with_underscores_action: DROP_HEADER
          route_config:
            name: mcp
            virtual_hosts:
            - name: mcp
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                # SSE streams stay open: no route timeout.
                route: {{ cluster: mcp_server, timeout: 0s }}
          http_filters:
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: warden
                root_id: warden
                # A broken or missing VM must not let requests through.
                fail_open: false
{header_mode}                vm_config:
                  vm_id: warden
                  runtime: envoy.wasm.runtime.v8
{code}                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: {config}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: mcp_server
    type: STATIC
    connect_timeout: 2s
{upstream_protocol}    load_assignment:
      cluster_name: mcp_server
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: {upstream_host}, port_value: {upstream_port} }}
"#,
        stats_tags = stats_tags(),
        admin_host = admin.host,
        admin_port = admin.port,
        listen_host = listen.host,
        listen_port = listen.port,
        upstream_host = upstream.host,
        upstream_port = upstream.port,
        code = code,
        config = quoted(&plugin_config_json),
        header_mode = header_mode_lines(document.filter.header_mode),
        access_log = access_log,
        upstream_protocol = upstream_protocol_lines(upstream_protocol),
    )?;
    out.push_str(&wasm_cluster_lines(wasm));
    for cluster in clusters {
        out.push_str(&cluster_lines(
            &cluster.name,
            "STATIC",
            &cluster.address.host,
            cluster.address.port,
        ));
    }
    Ok(out)
}

/// The labels Warden writes into its metric names (filter/src/metrics.rs).
const METRIC_LABELS: [&str; 7] = [
    "decision",
    "actor_type",
    "rule",
    "class",
    "kind",
    "outcome",
    "policy",
];

/// One `stats_tags` entry per label: the first group is cut from the name,
/// the second is the value.
fn stats_tags() -> String {
    METRIC_LABELS
        .iter()
        .map(|label| format!("  - {{ tag_name: {label}, regex: '({label}=\\.=(.+?);\\.;)' }}\n"))
        .collect()
}
