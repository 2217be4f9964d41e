//! An Envoy bootstrap that runs the filter in front of one MCP server.
//! The same text is what `envoy/example.yaml` holds for the example policy.
//!
//! The bootstrap is built as typed values ([`Bootstrap`] and below: only the
//! parts of Envoy's bootstrap proto that are rendered, fields named as the
//! proto names them, typed configs carrying their `@type`) and written as
//! YAML by serde. The YAML writer cannot place comments, so the reader-facing
//! explanations are a comment block at the top of the file
//! ([`header_comment`]); the rest is in `docs/deploy.md`.

mod jwt_authn;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use policy_sdk::PolicyDocument;
use policy_sdk::config::HeaderMode;
use serde::Serialize;

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
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(anyhow!("--{what}: `{text}` has no host"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }

    fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// STATIC for an IP address; LOGICAL_DNS for a host name: Envoy resolves
    /// it asynchronously and connects to the first address the answer gives,
    /// keeping connections when the answer changes. That is what a hosted
    /// service behind rotating addresses (an identity provider, a CDN) needs;
    /// STRICT_DNS would make every address a host of its own and drain
    /// connections on each change, which only pays for a pool of equals.
    fn discovery_type(&self) -> DiscoveryType {
        if self.ip().is_some() {
            DiscoveryType::Static
        } else {
            DiscoveryType::LogicalDns
        }
    }

    fn socket_address(&self) -> EnvoyAddress {
        EnvoyAddress {
            socket_address: SocketAddress {
                address: self.host.clone(),
                port_value: self.port,
            },
        }
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

/// The CA bundle a TLS cluster trusts when none is given: Debian's and
/// Ubuntu's system bundle (package `ca-certificates`), which Envoy's own
/// images carry as well.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How Envoy secures a connection to a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTls {
    /// The server name sent (SNI) and required in the certificate's subject
    /// alternative names; `None` for an IP address without `sni=`, whose
    /// certificate must then name that IP address.
    pub sni: Option<String>,
    /// The CA bundle (PEM) the server's chain must lead to, as Envoy opens it.
    pub trusted_ca: PathBuf,
}

/// An extra cluster the filter calls (`jwks_fetch` or revocation `remote`
/// sources name it), given as `NAME=HOST:PORT[,OPTION…]`.
///
/// Options: `tls` (TLS to this cluster), `plaintext` (no TLS, also on port
/// 443), `sni=NAME` (the server name to send and to find in the
/// certificate), `ca=PATH` (the CA bundle to trust instead of the system's).
/// Port 443, `sni=` and `ca=` imply `tls`.
pub struct Cluster {
    pub name: String,
    pub address: Address,
    pub tls: Option<ClusterTls>,
}

impl Cluster {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut parts = text.split(',');
        let first = parts.next().unwrap_or_default();
        let (name, address) = first.split_once('=').ok_or_else(|| {
            anyhow!("--cluster: `{text}` is not NAME=HOST:PORT[,tls][,sni=NAME][,ca=PATH]")
        })?;
        if name.is_empty()
            || name == MCP_CLUSTER
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(anyhow!("--cluster: `{name}` is not a usable cluster name"));
        }
        let address = Address::parse("cluster", address)?;
        let (mut tls, mut plaintext, mut sni, mut ca) = (false, false, None, None);
        for option in parts {
            match option.split_once('=') {
                None if option == "tls" => tls = true,
                None if option == "plaintext" => plaintext = true,
                Some(("sni", value)) if !value.is_empty() => sni = Some(value.to_owned()),
                Some(("ca", value)) if !value.is_empty() => ca = Some(PathBuf::from(value)),
                _ => {
                    return Err(anyhow!(
                        "--cluster: `{option}` is not an option of cluster `{name}` (tls, plaintext, sni=NAME, ca=PATH)"
                    ));
                }
            }
        }
        let wants_tls = tls || sni.is_some() || ca.is_some();
        if plaintext && wants_tls {
            return Err(anyhow!(
                "--cluster: cluster `{name}` cannot be both `plaintext` and TLS (tls, sni=, ca=)"
            ));
        }
        let tls = (wants_tls || (address.port == 443 && !plaintext)).then(|| ClusterTls {
            sni: sni.or_else(|| address.ip().is_none().then(|| address.host.clone())),
            trusted_ca: ca.unwrap_or_else(|| PathBuf::from(SYSTEM_CA_BUNDLE)),
        });
        Ok(Self {
            name: name.to_owned(),
            address,
            tls,
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
/// The MCP server's cluster.
pub const MCP_CLUSTER: &str = "mcp_server";

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

// ---------------------------------------------------------------------------
// The typed bootstrap: Envoy's proto field names, only what is rendered.

/// `config.bootstrap.v3.Bootstrap`.
#[derive(Serialize)]
pub struct Bootstrap {
    pub admin: Admin,
    pub stats_config: StatsConfig,
    pub static_resources: StaticResources,
}

#[derive(Serialize)]
pub struct Admin {
    pub address: EnvoyAddress,
}

/// `config.core.v3.Address` (socket addresses only).
#[derive(Serialize)]
pub struct EnvoyAddress {
    pub socket_address: SocketAddress,
}

#[derive(Serialize)]
pub struct SocketAddress {
    pub address: String,
    pub port_value: u16,
}

#[derive(Serialize)]
pub struct StatsConfig {
    pub stats_tags: Vec<TagSpecifier>,
}

#[derive(Serialize)]
pub struct TagSpecifier {
    pub tag_name: String,
    pub regex: String,
}

#[derive(Serialize)]
pub struct StaticResources {
    pub listeners: Vec<Listener>,
    pub clusters: Vec<EnvoyCluster>,
}

#[derive(Serialize)]
pub struct Listener {
    pub name: String,
    pub address: EnvoyAddress,
    pub filter_chains: Vec<FilterChain>,
}

#[derive(Serialize)]
pub struct FilterChain {
    pub filters: Vec<NetworkFilter>,
}

#[derive(Serialize)]
pub struct NetworkFilter {
    pub name: &'static str,
    pub typed_config: Typed<HttpConnectionManager>,
}

/// A typed config: `@type` first, then the message's fields.
#[derive(Serialize)]
pub struct Typed<T> {
    #[serde(rename = "@type")]
    pub type_url: &'static str,
    #[serde(flatten)]
    pub config: T,
}

impl<T: TypeUrl> Typed<T> {
    fn new(config: T) -> Self {
        Self {
            type_url: T::TYPE_URL,
            config,
        }
    }
}

/// The `@type` of a message rendered as a typed config.
pub trait TypeUrl {
    const TYPE_URL: &'static str;
}

#[derive(Serialize)]
pub struct HttpConnectionManager {
    pub stat_prefix: &'static str,
    /// An edge proxy: the client's own address is the remote address, and
    /// Envoy replaces a client's x-request-id with its own.
    pub use_remote_address: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub access_log: Vec<AccessLog>,
    pub codec_type: &'static str,
    pub common_http_protocol_options: HttpProtocolOptionsCommon,
    pub route_config: RouteConfiguration,
    pub http_filters: Vec<HttpFilter>,
}

impl TypeUrl for HttpConnectionManager {
    const TYPE_URL: &'static str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
}

/// `config.core.v3.HttpProtocolOptions` (the connection manager's).
#[derive(Serialize)]
pub struct HttpProtocolOptionsCommon {
    pub headers_with_underscores_action: &'static str,
}

#[derive(Serialize)]
pub struct AccessLog {
    pub name: &'static str,
    pub typed_config: Typed<FileAccessLog>,
}

#[derive(Serialize)]
pub struct FileAccessLog {
    pub path: String,
    pub log_format: SubstitutionFormatString,
}

impl TypeUrl for FileAccessLog {
    const TYPE_URL: &'static str =
        "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog";
}

#[derive(Serialize)]
pub struct SubstitutionFormatString {
    pub text_format_source: DataSource,
}

/// `config.core.v3.DataSource`: one of its fields (a proto `oneof`).
pub enum DataSource {
    InlineString(String),
    Filename(String),
}

impl Serialize for DataSource {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::InlineString(text) => one_of(serializer, "inline_string", text),
            Self::Filename(path) => one_of(serializer, "filename", path),
        }
    }
}

/// A proto `oneof` as the map of its one field (serde's externally tagged
/// enums become YAML tags, which Envoy does not read).
fn one_of<S: serde::Serializer, T: Serialize + ?Sized>(
    serializer: S,
    field: &'static str,
    value: &T,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap as _;
    let mut map = serializer.serialize_map(Some(1))?;
    map.serialize_entry(field, value)?;
    map.end()
}

#[derive(Serialize)]
pub struct RouteConfiguration {
    pub name: &'static str,
    pub virtual_hosts: Vec<VirtualHost>,
}

#[derive(Serialize)]
pub struct VirtualHost {
    pub name: &'static str,
    pub domains: Vec<&'static str>,
    pub routes: Vec<Route>,
}

#[derive(Serialize)]
pub struct Route {
    #[serde(rename = "match")]
    pub route_match: RouteMatch,
    pub route: RouteAction,
}

#[derive(Serialize)]
pub struct RouteMatch {
    pub prefix: &'static str,
}

#[derive(Serialize)]
pub struct RouteAction {
    pub cluster: &'static str,
    /// `0s`: SSE streams stay open, no route timeout.
    pub timeout: &'static str,
}

#[derive(Serialize)]
pub struct HttpFilter {
    pub name: &'static str,
    pub typed_config: HttpFilterConfig,
}

#[derive(Serialize)]
#[serde(untagged)]
pub enum HttpFilterConfig {
    JwtAuthn(Typed<jwt_authn::JwtAuthentication>),
    Wasm(Typed<Wasm>),
    Router(Typed<Router>),
}

/// `extensions.filters.http.wasm.v3.Wasm`.
#[derive(Serialize)]
pub struct Wasm {
    pub config: PluginConfig,
}

impl TypeUrl for Wasm {
    const TYPE_URL: &'static str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
}

#[derive(Serialize)]
pub struct Router {}

impl TypeUrl for Router {
    const TYPE_URL: &'static str =
        "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
}

/// `extensions.wasm.v3.PluginConfig`.
#[derive(Serialize)]
pub struct PluginConfig {
    pub name: &'static str,
    pub root_id: &'static str,
    /// A broken or missing VM must not let requests through.
    pub fail_open: bool,
    /// Only in `filter.header_mode: hold` (Envoy 1.35 or later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_on_headers_stop_iteration: Option<bool>,
    pub vm_config: VmConfig,
    pub configuration: Typed<StringValue>,
}

#[derive(Serialize)]
pub struct VmConfig {
    pub vm_id: &'static str,
    pub runtime: &'static str,
    pub code: AsyncDataSource,
}

/// `config.core.v3.AsyncDataSource`: a file Envoy opens, or a module it
/// fetches and accepts only with its SHA-256.
pub enum AsyncDataSource {
    Local(DataSource),
    Remote(RemoteDataSource),
}

impl Serialize for AsyncDataSource {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Local(source) => one_of(serializer, "local", source),
            Self::Remote(remote) => one_of(serializer, "remote", remote),
        }
    }
}

#[derive(Serialize)]
pub struct RemoteDataSource {
    pub http_uri: HttpUri,
    pub sha256: String,
    pub retry_policy: RetryPolicy,
}

#[derive(Serialize)]
pub struct HttpUri {
    pub uri: String,
    pub cluster: &'static str,
    pub timeout: &'static str,
}

#[derive(Serialize)]
pub struct RetryPolicy {
    pub num_retries: u32,
}

/// `google.protobuf.StringValue`: the plugin configuration (JSON text).
#[derive(Serialize)]
pub struct StringValue {
    pub value: String,
}

impl TypeUrl for StringValue {
    const TYPE_URL: &'static str = "type.googleapis.com/google.protobuf.StringValue";
}

/// `config.cluster.v3.Cluster` of one endpoint.
#[derive(Serialize)]
pub struct EnvoyCluster {
    pub name: String,
    #[serde(rename = "type")]
    pub discovery_type: DiscoveryType,
    pub connect_timeout: &'static str,
    /// For a DNS cluster: IPv4 first, IPv6 when a name has no IPv4 address,
    /// so a host without IPv6 routes still reaches dual-stack names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_lookup_family: Option<&'static str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub typed_extension_protocol_options:
        BTreeMap<&'static str, Typed<UpstreamHttpProtocolOptions>>,
    pub load_assignment: ClusterLoadAssignment,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport_socket: Option<TransportSocket>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiscoveryType {
    Static,
    LogicalDns,
}

/// `extensions.upstreams.http.v3.HttpProtocolOptions`.
#[derive(Serialize)]
pub struct UpstreamHttpProtocolOptions {
    pub explicit_http_config: ExplicitHttpConfig,
}

impl TypeUrl for UpstreamHttpProtocolOptions {
    const TYPE_URL: &'static str =
        "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
}

#[derive(Serialize)]
pub struct ExplicitHttpConfig {
    pub http2_protocol_options: Http2ProtocolOptions,
}

#[derive(Serialize)]
pub struct Http2ProtocolOptions {}

#[derive(Serialize)]
pub struct ClusterLoadAssignment {
    pub cluster_name: String,
    pub endpoints: Vec<LocalityLbEndpoints>,
}

#[derive(Serialize)]
pub struct LocalityLbEndpoints {
    pub lb_endpoints: Vec<LbEndpoint>,
}

#[derive(Serialize)]
pub struct LbEndpoint {
    pub endpoint: Endpoint,
}

#[derive(Serialize)]
pub struct Endpoint {
    pub address: EnvoyAddress,
}

#[derive(Serialize)]
pub struct TransportSocket {
    pub name: &'static str,
    pub typed_config: Typed<UpstreamTlsContext>,
}

/// `extensions.transport_sockets.tls.v3.UpstreamTlsContext`.
#[derive(Serialize)]
pub struct UpstreamTlsContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    pub common_tls_context: CommonTlsContext,
}

impl TypeUrl for UpstreamTlsContext {
    const TYPE_URL: &'static str =
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
}

#[derive(Serialize)]
pub struct CommonTlsContext {
    pub validation_context: CertificateValidationContext,
}

#[derive(Serialize)]
pub struct CertificateValidationContext {
    pub trusted_ca: DataSource,
    /// Envoy checks the chain against `trusted_ca` but not the server's name
    /// unless told: without this any certificate from that CA would do.
    pub match_typed_subject_alt_names: Vec<SubjectAltNameMatcher>,
}

#[derive(Serialize)]
pub struct SubjectAltNameMatcher {
    pub san_type: &'static str,
    pub matcher: StringMatcher,
}

#[derive(Serialize)]
pub struct StringMatcher {
    pub exact: String,
}

// ---------------------------------------------------------------------------
// Building it.

fn single_endpoint_cluster(name: &str, address: &Address) -> EnvoyCluster {
    let discovery_type = address.discovery_type();
    EnvoyCluster {
        name: name.to_owned(),
        discovery_type,
        connect_timeout: "2s",
        dns_lookup_family: (discovery_type == DiscoveryType::LogicalDns).then_some("V4_PREFERRED"),
        typed_extension_protocol_options: BTreeMap::new(),
        load_assignment: ClusterLoadAssignment {
            cluster_name: name.to_owned(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    endpoint: Endpoint {
                        address: address.socket_address(),
                    },
                }],
            }],
        },
        transport_socket: None,
    }
}

fn tls_socket(tls: &ClusterTls, address: &Address) -> anyhow::Result<TransportSocket> {
    let trusted_ca = tls
        .trusted_ca
        .to_str()
        .ok_or_else(|| anyhow!("--cluster: ca path is not UTF-8"))?
        .to_owned();
    let san = match (&tls.sni, address.ip()) {
        (Some(name), _) => SubjectAltNameMatcher {
            san_type: "DNS",
            matcher: StringMatcher {
                exact: name.clone(),
            },
        },
        (None, Some(ip)) => SubjectAltNameMatcher {
            san_type: "IP_ADDRESS",
            matcher: StringMatcher {
                exact: ip.to_string(),
            },
        },
        (None, None) => SubjectAltNameMatcher {
            san_type: "DNS",
            matcher: StringMatcher {
                exact: address.host.clone(),
            },
        },
    };
    Ok(TransportSocket {
        name: "envoy.transport_sockets.tls",
        typed_config: Typed::new(UpstreamTlsContext {
            sni: tls.sni.clone(),
            common_tls_context: CommonTlsContext {
                validation_context: CertificateValidationContext {
                    trusted_ca: DataSource::Filename(trusted_ca),
                    match_typed_subject_alt_names: vec![san],
                },
            },
        }),
    })
}

fn fetch_cluster(cluster: &Cluster) -> anyhow::Result<EnvoyCluster> {
    let mut rendered = single_endpoint_cluster(&cluster.name, &cluster.address);
    rendered.transport_socket = cluster
        .tls
        .as_ref()
        .map(|tls| tls_socket(tls, &cluster.address))
        .transpose()?;
    Ok(rendered)
}

fn mcp_cluster(upstream: &Address, protocol: UpstreamProtocol) -> EnvoyCluster {
    let mut cluster = single_endpoint_cluster(MCP_CLUSTER, upstream);
    if protocol == UpstreamProtocol::H2c {
        cluster.typed_extension_protocol_options.insert(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            Typed::new(UpstreamHttpProtocolOptions {
                explicit_http_config: ExplicitHttpConfig {
                    http2_protocol_options: Http2ProtocolOptions {},
                },
            }),
        );
    }
    cluster
}

fn code(wasm: &WasmCode) -> anyhow::Result<AsyncDataSource> {
    Ok(match wasm {
        WasmCode::Local(path) => AsyncDataSource::Local(DataSource::Filename(
            path.to_str()
                .ok_or_else(|| anyhow!("--wasm: path is not UTF-8"))?
                .to_owned(),
        )),
        WasmCode::Remote(remote) => AsyncDataSource::Remote(RemoteDataSource {
            http_uri: HttpUri {
                uri: remote.url.clone(),
                cluster: WASM_CLUSTER,
                timeout: "10s",
            },
            sha256: remote.sha256.clone(),
            retry_policy: RetryPolicy { num_retries: 2 },
        }),
    })
}

/// With `filter.audit_filter_state`, an access log that writes each
/// request's audit line from its filter state, whatever Envoy's log level:
/// to `audit_log`, or to Envoy's standard output. A request Warden did not
/// audit (a passthrough path) writes `-`.
fn audit_access_log(
    document: &PolicyDocument,
    audit_log: Option<&Path>,
) -> anyhow::Result<Vec<AccessLog>> {
    if !document.filter.audit_filter_state {
        return Ok(Vec::new());
    }
    let path = match audit_log {
        Some(path) => path
            .to_str()
            .ok_or_else(|| anyhow!("--audit-log: path is not UTF-8"))?,
        None => "/dev/stdout",
    };
    Ok(vec![AccessLog {
        name: "envoy.access_loggers.file",
        typed_config: Typed::new(FileAccessLog {
            path: path.to_owned(),
            log_format: SubstitutionFormatString {
                text_format_source: DataSource::InlineString(
                    "%FILTER_STATE(wasm.warden_audit:PLAIN)%\n".to_owned(),
                ),
            },
        }),
    }])
}

/// The labels Warden writes into its metric names (filter/src/metrics.rs).
const METRIC_LABELS: [&str; 9] = [
    "decision",
    "actor_type",
    "rule",
    "class",
    "kind",
    "outcome",
    "policy",
    "document",
    "issuer",
];

/// One `stats_tags` entry per label: the first group is cut from the name,
/// the second is the value.
fn stats_tags() -> Vec<TagSpecifier> {
    METRIC_LABELS
        .iter()
        .map(|label| TagSpecifier {
            tag_name: (*label).to_owned(),
            regex: format!("({label}=\\.=(.+?);\\.;)"),
        })
        .collect()
}

/// Everything `warden envoy` renders from.
pub struct BootstrapInput<'a> {
    pub addresses: &'a Addresses,
    pub wasm: &'a WasmCode,
    pub document: &'a PolicyDocument,
    pub upstream_protocol: UpstreamProtocol,
    pub clusters: &'a [Cluster],
    pub audit_log: Option<&'a Path>,
}

impl BootstrapInput<'_> {
    /// The typed bootstrap (the document is the plugin configuration; its
    /// `filter.header_mode` decides whether Envoy honours a header pause).
    pub fn build(&self) -> anyhow::Result<Bootstrap> {
        let Addresses {
            listen,
            upstream,
            admin,
        } = self.addresses;
        let wasm_filter = Wasm {
            config: PluginConfig {
                name: "warden",
                root_id: "warden",
                fail_open: false,
                allow_on_headers_stop_iteration: (self.document.filter.header_mode
                    == HeaderMode::Hold)
                    .then_some(true),
                vm_config: VmConfig {
                    vm_id: "warden",
                    runtime: "envoy.wasm.runtime.v8",
                    code: code(self.wasm)?,
                },
                configuration: Typed::new(StringValue {
                    value: serde_json::to_string(self.document)?,
                }),
            },
        };
        let manager = HttpConnectionManager {
            stat_prefix: "mcp",
            use_remote_address: true,
            access_log: audit_access_log(self.document, self.audit_log)?,
            codec_type: "AUTO",
            common_http_protocol_options: HttpProtocolOptionsCommon {
                headers_with_underscores_action: "DROP_HEADER",
            },
            route_config: RouteConfiguration {
                name: "mcp",
                virtual_hosts: vec![VirtualHost {
                    name: "mcp",
                    domains: vec!["*"],
                    routes: vec![Route {
                        route_match: RouteMatch { prefix: "/" },
                        route: RouteAction {
                            cluster: MCP_CLUSTER,
                            timeout: "0s",
                        },
                    }],
                }],
            },
            http_filters: jwt_authn::filter(self.document, self.clusters)?
                .map(|config| HttpFilter {
                    name: "envoy.filters.http.jwt_authn",
                    typed_config: HttpFilterConfig::JwtAuthn(config),
                })
                .into_iter()
                .chain([
                    HttpFilter {
                        name: "envoy.filters.http.wasm",
                        typed_config: HttpFilterConfig::Wasm(Typed::new(wasm_filter)),
                    },
                    HttpFilter {
                        name: "envoy.filters.http.router",
                        typed_config: HttpFilterConfig::Router(Typed::new(Router {})),
                    },
                ])
                .collect(),
        };
        let mut clusters = vec![mcp_cluster(upstream, self.upstream_protocol)];
        if let WasmCode::Remote(remote) = self.wasm {
            clusters.push(single_endpoint_cluster(WASM_CLUSTER, &remote.address));
        }
        for cluster in self.clusters {
            clusters.push(fetch_cluster(cluster)?);
        }
        Ok(Bootstrap {
            admin: Admin {
                address: admin.socket_address(),
            },
            stats_config: StatsConfig {
                stats_tags: stats_tags(),
            },
            static_resources: StaticResources {
                listeners: vec![Listener {
                    name: "mcp".to_owned(),
                    address: listen.socket_address(),
                    filter_chains: vec![FilterChain {
                        filters: vec![NetworkFilter {
                            name: "envoy.filters.network.http_connection_manager",
                            typed_config: Typed::new(manager),
                        }],
                    }],
                }],
                clusters,
            },
        })
    }

    /// The comment block at the top of the rendered file: what a reader of
    /// the YAML needs to know that the values alone do not say.
    fn header_comment(&self) -> String {
        let mut lines = vec![
            "Envoy bootstrap generated by `warden envoy`: Warden in front of one MCP server."
                .to_owned(),
            "Explained in docs/deploy.md; in brief:".to_owned(),
            "- The listener is an edge proxy (use_remote_address): Envoy replaces a".to_owned(),
            "  client's x-request-id; Warden's audit carries its own id either way.".to_owned(),
            "- codec_type AUTO: HTTP/1.1, and HTTP/2 without TLS (h2c, prior knowledge)."
                .to_owned(),
            "- Header names with underscores are dropped (DROP_HEADER): a WSGI or CGI".to_owned(),
            "  upstream reads `x_warden_subject` as `x-warden-subject`, so a client could"
                .to_owned(),
            "  forge an identity header; Warden removes every spelling of its own as well."
                .to_owned(),
            "- The route has no timeout (0s): SSE streams stay open.".to_owned(),
            "- fail_open: false: a broken or missing VM must not let requests through.".to_owned(),
            "- stats_tags: Warden writes the labels of its metrics into their names".to_owned(),
            "  (`decision=.=deny;.;…;.;warden_decisions_total`); these extract them, so".to_owned(),
            "  /stats/prometheus shows `warden_decisions_total{decision=\"deny\",…}`.".to_owned(),
        ];
        lines.extend(match self.document.filter.header_mode {
            HeaderMode::Hold => [
                "- filter.header_mode: hold. Envoy honours StopIteration from the request-headers",
                "  callback (allow_on_headers_stop_iteration, Envoy 1.35 or later), so headers",
                "  are held (not sent upstream) while the body is judged.",
            ],
            HeaderMode::Stream => [
                "- filter.header_mode: stream. Request headers go upstream at once; the filter",
                "  holds the body until it is judged, so allow_on_headers_stop_iteration is",
                "  not needed (`hold` sets it).",
            ],
        }
        .map(str::to_owned));
        if self.document.filter.audit_filter_state {
            lines.extend(
                [
                    "- The access log writes one audit line per request from Warden's filter",
                    "  state (filter.audit_filter_state), at every --log-level, buffered: the",
                    "  cheapest sink. For a policy that leaves the option unset, `--audit-sink",
                    "  envoy-log` puts them in Envoy's own log at info instead.",
                ]
                .map(str::to_owned),
            );
        } else {
            lines.extend(
                [
                    "- Audit lines go to Envoy's own log at info (--audit-sink envoy-log), so a",
                    "  --log-level above info drops them; the default access log keeps them.",
                ]
                .map(str::to_owned),
            );
        }
        if self.document.identity.verified_by == policy_sdk::identity::VerifiedBy::JwtAuthn {
            lines.extend(
                [
                    "- identity.verified_by: jwt_authn. Envoy's jwt_authn filter verifies tokens",
                    "  (one provider per issuer, Authorization: Bearer only) and leaves each verified",
                    "  payload in the stream's metadata, where Warden reads it. A missing or failed",
                    "  token goes on without one (allow_missing_or_failed): Warden answers it, and",
                    "  refuses any token without a verified payload.",
                ]
                .map(str::to_owned),
            );
        }
        if self.upstream_protocol == UpstreamProtocol::H2c {
            lines.push(
                "- The MCP server speaks HTTP/2 without TLS (h2c, prior knowledge).".to_owned(),
            );
        }
        if let WasmCode::Remote(_) = self.wasm {
            lines.push(format!(
                "- The module is fetched by Envoy at start-up through cluster `{WASM_CLUSTER}` and"
            ));
            lines.push(
                "  accepted only with its SHA-256; if it cannot be had, the filter is not"
                    .to_owned(),
            );
            lines.push("  loaded and requests are refused (fail_open: false).".to_owned());
        }
        for cluster in self.clusters {
            match &cluster.tls {
                Some(tls) => lines.push(format!(
                    "- Cluster `{}`: TLS, the server's chain must lead to {} and its certificate name {}.",
                    cluster.name,
                    tls.trusted_ca.display(),
                    tls.sni.as_deref().unwrap_or(&cluster.address.host),
                )),
                None => lines.push(format!(
                    "- Cluster `{}`: plain HTTP, no TLS (loopback or a trusted network only).",
                    cluster.name
                )),
            }
        }
        lines.iter().map(|line| format!("# {line}\n")).collect()
    }

    /// The bootstrap as YAML text, with its comment block.
    pub fn render(&self) -> anyhow::Result<String> {
        let yaml = serde_yaml_ng::to_string(&self.build()?)?;
        Ok(format!("{}{yaml}", self.header_comment()))
    }
}
