//! `warden`: compile policies into the filter's plugin configuration, render
//! a ready Envoy bootstrap, and judge requests by running the built filter
//! (`warden_filter.wasm`) in the wasmtime harness.
//!
//! Exit status: 0 allow / pass, 1 deny / fail, 2 usage error or invalid
//! policy.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use policy_sdk::config::HeaderMode;
use policy_sdk::identity::VerifiedBy;
use policy_sdk::testing::TEST_NOW;
use serde_json::{Value, json};
use warden_harness::embedded::{self, CLI_BUILD};
use warden_harness::filter::{HttpRequest, WardenFilter};
use warden_harness::load::{Diagnostic, load_policy};
use warden_harness::suite::{Minter, SuiteError, Verdict, run_suite};
use warden_harness::{envoy, host::FilterModule};

/// Warden: MCP authorization for proxy-wasm hosts.
#[derive(Parser)]
#[command(
    name = "warden",
    version = concat!(env!("CARGO_PKG_VERSION"), " (git ", env!("WARDEN_GIT_HASH"), ")"),
    about
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
enum Format {
    #[default]
    Text,
    Json,
}

/// `filter.header_mode` on the command line.
#[derive(Clone, Copy, ValueEnum)]
enum HeaderModeArg {
    /// Request headers go upstream at once; the body is held until judged.
    Stream,
    /// Request headers are held too (Envoy 1.35 or later).
    Hold,
}

/// Where `warden envoy`'s bootstrap has Envoy write Warden's audit lines.
#[derive(Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
enum AuditSinkArg {
    /// A file access log, from Warden's filter state: at every log level,
    /// buffered (the cheapest way; BENCHMARKS.md). Sets
    /// `filter.audit_filter_state`.
    #[default]
    AccessLog,
    /// Envoy's own log, at `info`: lost under `--log-level warn`. For a
    /// policy that leaves `filter.audit_filter_state` unset.
    EnvoyLog,
}

impl From<HeaderModeArg> for HeaderMode {
    fn from(mode: HeaderModeArg) -> Self {
        match mode {
            HeaderModeArg::Stream => Self::Stream,
            HeaderModeArg::Hold => Self::Hold,
        }
    }
}

/// `identity.verified_by` on the command line.
#[derive(Clone, Copy, ValueEnum)]
enum VerifiedByArg {
    /// Warden verifies the bearer token.
    Warden,
    /// Envoy's `jwt_authn` did; the requests carry its verified payload.
    JwtAuthn,
}

impl From<VerifiedByArg> for VerifiedBy {
    fn from(by: VerifiedByArg) -> Self {
        match by {
            VerifiedByArg::Warden => Self::Warden,
            VerifiedByArg::JwtAuthn => Self::JwtAuthn,
        }
    }
}

/// Which filter module to run.
#[derive(Args)]
struct WasmArg {
    /// Run this filter module instead of the one embedded in this CLI
    /// (`$WARDEN_WASM` does the same; `warden version` shows which is used).
    #[arg(long)]
    wasm: Option<PathBuf>,
}

impl WasmArg {
    fn load(&self) -> anyhow::Result<FilterModule> {
        Ok(embedded::choose(self.wasm.as_deref())?.compile()?)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Validate a policy and print the filter's plugin configuration (JSON).
    ///
    /// Key files are read (relative to the policy file) and inlined.
    /// Diagnostics name the file, line, column and field. Exit status 2 when
    /// the policy is invalid.
    Compile {
        /// The policy file (YAML or JSON).
        policy: PathBuf,
        /// Write the configuration here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Diagnostics as text or as one JSON object on standard error.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Print a complete Envoy bootstrap that runs the filter with a policy.
    Envoy {
        /// The policy file (YAML or JSON).
        policy: PathBuf,
        /// Path of the built filter (`warden_filter.wasm`), as Envoy should
        /// open it: a relative path is resolved from Envoy's working directory.
        #[arg(long, required_unless_present = "wasm_url")]
        wasm: Option<PathBuf>,
        /// Have Envoy fetch the filter from this `http://` URL at start-up
        /// (`vm_config.code.remote`, through a cluster `warden_wasm` for the
        /// URL's host) instead of opening a file.
        #[arg(
            long,
            conflicts_with = "wasm",
            requires = "wasm_sha256",
            value_name = "URL"
        )]
        wasm_url: Option<String>,
        /// The SHA-256 of the module at --wasm-url (64 hex digits): Envoy
        /// loads nothing else, and without the filter refuses requests.
        #[arg(long, requires = "wasm_url", value_name = "HEX")]
        wasm_sha256: Option<String>,
        /// Listener address of the MCP endpoint.
        #[arg(long, default_value = "127.0.0.1:10000")]
        listen: String,
        /// Address of the MCP server Envoy forwards allowed requests to.
        #[arg(long, default_value = "127.0.0.1:8000")]
        upstream: String,
        /// Envoy admin address (stats, readiness).
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: String,
        /// A cluster the filter fetches documents from (key sets, revocation
        /// list), as NAME=HOST:PORT[,OPTION...]; every cluster the policy
        /// names is required. An IP address is a STATIC cluster, a host name
        /// a LOGICAL_DNS one. Options: `tls`; `sni=NAME` (default: the host
        /// name), `ca=PATH` (default: the system bundle
        /// /etc/ssl/certs/ca-certificates.crt), both implying `tls`;
        /// `plaintext`. Port 443 means TLS unless `plaintext` is given.
        #[arg(
            long = "cluster",
            value_name = "NAME=HOST:PORT[,tls][,sni=NAME][,ca=PATH]"
        )]
        clusters: Vec<String>,
        /// Override the policy's `filter.header_mode` (written into the
        /// plugin configuration too). `hold` renders
        /// `allow_on_headers_stop_iteration: true`, which needs Envoy 1.35 or
        /// later; `stream` works on every Envoy.
        #[arg(long, value_enum)]
        header_mode: Option<HeaderModeArg>,
        /// How Envoy talks to the MCP server: HTTP/1.1, or HTTP/2 without TLS
        /// (h2c, prior knowledge).
        #[arg(long, value_enum, default_value_t)]
        upstream_protocol: envoy::UpstreamProtocol,
        /// Where Envoy writes Warden's audit lines: through a file access
        /// log from Warden's filter state (every log level, buffered, the
        /// cheapest), or in Envoy's own log at `info`.
        #[arg(long, value_enum, default_value_t)]
        audit_sink: AuditSinkArg,
        /// The file the access log writes the audit lines to (default:
        /// Envoy's standard output).
        #[arg(long, value_name = "PATH")]
        audit_log: Option<PathBuf>,
    },
    /// Print the versions and git hashes of this CLI and of the filter module
    /// it runs (embedded, or --wasm / $WARDEN_WASM), with the module's SHA-256.
    Version {
        #[command(flatten)]
        wasm: WasmArg,
    },
    /// Write the filter module embedded in this CLI to a file (for Envoy's
    /// `--wasm`, or to publish), and print its SHA-256.
    Wasm {
        /// Where to write the module.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Judge one MCP request by running the built filter: prints the
    /// decision, the deciding rule, its owner and the reason.
    ///
    /// Exit 0 allow, 1 deny, 2 usage error or invalid policy.
    Check {
        /// The policy file (YAML or JSON).
        #[arg(long)]
        policy: PathBuf,
        /// The JSON-RPC request body (a file).
        #[arg(long)]
        request: PathBuf,
        /// A bearer token, sent as is (the policy must trust its issuer).
        #[arg(long, conflicts_with = "claims", required_unless_present = "claims")]
        token: Option<String>,
        /// JSON claims of the caller (a file): the harness mints a token for
        /// them with its own key and makes the policy's issuers trust it.
        #[arg(long)]
        claims: Option<PathBuf>,
        #[command(flatten)]
        wasm: WasmArg,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Run policy test suites (YAML) through the built filter.
    ///
    /// Each case gives the caller's claims (or a raw token), the request (MCP
    /// shorthand such as `tool` and `arguments`, or an HTTP-level body, method,
    /// path and headers) and what must happen: `allow`, `deny`, or the
    /// decision, rule, status, forwarding, error code, reason or upstream
    /// headers. Prints one line per case and a closing `N passed, N failed`.
    /// Exit 0 when all pass, 1 when any fails, 2 when a suite or its policy
    /// is invalid.
    Test {
        /// Suite files.
        #[arg(required = true)]
        suites: Vec<PathBuf>,
        #[command(flatten)]
        wasm: WasmArg,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Count the hostcalls the built filter makes per request, by name, for
    /// three reference requests under a policy: an allowed `tools/call`, a
    /// denied one, and a `tools/list` whose answer loses the denied tool;
    /// then for one timer tick of the root context. Also the Wasm
    /// instructions each ran (wasmtime's fuel), a count no noise changes.
    ///
    /// The VM has started and ticked first, so the counts are a worker's in
    /// its steady state. The harness mints the caller's token (its issuers
    /// are made to trust the harness's key, inline) and answers the
    /// documents the policy polls with empty ones. `make bench` writes the
    /// counts into BENCHMARKS.md.
    Hostcalls(HostcallsArgs),
}

/// What `warden hostcalls` counts, and how.
#[derive(Args)]
struct HostcallsArgs {
    /// The policy file (YAML or JSON).
    #[arg(long)]
    policy: PathBuf,
    /// JSON claims of the caller (a file); default: a human, `alice`,
    /// in group `eng`.
    #[arg(long)]
    claims: Option<PathBuf>,
    /// A tool the policy lets the caller call.
    #[arg(long)]
    tool: String,
    /// A tool the policy does not let the caller call.
    #[arg(long)]
    denied_tool: String,
    /// Override the policy's `filter.header_mode`.
    #[arg(long, value_enum)]
    header_mode: Option<HeaderModeArg>,
    /// Override the policy's `identity.verified_by`.
    #[arg(long, value_enum)]
    verified_by: Option<VerifiedByArg>,
    /// Every request with a token never presented before: the cost of a
    /// token the verification cache does not know, signature included.
    #[arg(long)]
    fresh_tokens: bool,
    /// The one algorithm every issuer accepts, and the harness signs with
    /// (`ES256`, `RS256`, `EdDSA`); default: the policy's.
    #[arg(long, value_parser = ["ES256", "RS256", "EdDSA"])]
    alg: Option<String>,
    /// After counting, send the allowed call this many more times: a
    /// load for a sampling profiler (`bench/profile_wasm.sh`), which
    /// sees the module's functions by name when the environment sets
    /// `WARDEN_WASM_PERFMAP=1`.
    #[arg(long, default_value_t = 0)]
    repeat: u32,
    #[command(flatten)]
    wasm: WasmArg,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Compile {
            policy,
            output,
            format,
        } => compile(&policy, output.as_deref(), format),
        Command::Envoy {
            policy,
            wasm,
            wasm_url,
            wasm_sha256,
            listen,
            upstream,
            admin,
            clusters,
            header_mode,
            upstream_protocol,
            audit_sink,
            audit_log,
        } => {
            let mut loaded = load_policy(&policy)?;
            match audit_sink {
                AuditSinkArg::AccessLog => loaded.document.filter.audit_filter_state = true,
                AuditSinkArg::EnvoyLog if loaded.document.filter.audit_filter_state => {
                    anyhow::bail!(
                        "--audit-sink envoy-log: the policy puts audit lines in filter state \
                         for an access log (filter.audit_filter_state: true); drop one of the two"
                    )
                }
                AuditSinkArg::EnvoyLog if audit_log.is_some() => {
                    anyhow::bail!(
                        "--audit-log names the access log's file: it needs --audit-sink access-log"
                    )
                }
                AuditSinkArg::EnvoyLog => {}
            }
            if let Some(mode) = header_mode {
                loaded.document.filter.header_mode = mode.into();
            }
            let clusters = clusters
                .iter()
                .map(|c| envoy::Cluster::parse(c))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let code = match (wasm, wasm_url, wasm_sha256) {
                (_, Some(url), Some(sha256)) => {
                    envoy::WasmCode::Remote(envoy::RemoteWasm::parse(&url, &sha256)?)
                }
                (Some(path), _, _) => envoy::WasmCode::Local(path),
                _ => anyhow::bail!("give --wasm PATH, or --wasm-url URL with --wasm-sha256 HEX"),
            };
            if matches!(code, envoy::WasmCode::Remote(_))
                && clusters.iter().any(|c| c.name == envoy::WASM_CLUSTER)
            {
                anyhow::bail!(
                    "--cluster: `{}` is the cluster --wasm-url renders",
                    envoy::WASM_CLUSTER
                );
            }
            for needed in envoy::clusters_named_by(&loaded.document) {
                if !clusters.iter().any(|c| c.name == needed) {
                    anyhow::bail!(
                        "the policy fetches documents through cluster `{needed}`: give --cluster {needed}=HOST:PORT"
                    );
                }
            }
            let bootstrap = envoy::BootstrapInput {
                addresses: &envoy::Addresses::parse(&listen, &upstream, &admin)?,
                wasm: &code,
                document: &loaded.document,
                upstream_protocol,
                clusters: &clusters,
                audit_log: audit_log.as_deref(),
            }
            .render()?;
            print!("{bootstrap}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Version { wasm } => version(&wasm),
        Command::Wasm { output } => write_embedded(&output),
        Command::Check {
            policy,
            request,
            token,
            claims,
            wasm,
            format,
        } => check(&policy, &request, token, claims.as_deref(), &wasm, format),
        Command::Test {
            suites,
            wasm,
            format,
        } => test(&suites, &wasm, format),
        Command::Hostcalls(args) => hostcalls(&args),
    }
}

fn hostcalls(args: &HostcallsArgs) -> anyhow::Result<ExitCode> {
    let HostcallsArgs {
        policy,
        claims,
        tool: allowed_tool,
        denied_tool,
        header_mode,
        verified_by,
        fresh_tokens,
        alg,
        repeat,
        wasm,
        format,
    } = args;
    let (format, repeat) = (*format, *repeat);
    let mut loaded = match load_policy(policy) {
        Ok(loaded) => loaded,
        Err(diagnostic) => return Ok(report_diagnostic(&diagnostic, format)),
    };
    if let Some(mode) = header_mode {
        loaded.document.filter.header_mode = (*mode).into();
    }
    if let Some(by) = verified_by {
        loaded.document.identity.verified_by = (*by).into();
    }
    if let Some(alg) = alg {
        warden_harness::hostcalls::accept_only(&mut loaded.document, alg);
    }
    let claims: Value = match claims {
        Some(path) => serde_json::from_slice(
            &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )
        .context("claims must be a JSON object")?,
        None => warden_harness::hostcalls::default_claims(),
    };
    let mut reference = warden_harness::hostcalls::Reference::for_document(
        &loaded.document,
        &claims,
        allowed_tool,
        denied_tool,
    )
    .map_err(anyhow::Error::msg)?;
    reference.fresh_tokens = *fresh_tokens;
    let counted = warden_harness::hostcalls::count(&wasm.load()?, &reference, repeat)?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&counted)?),
        Format::Text => {
            let names: std::collections::BTreeSet<&String> =
                counted.iter().flat_map(|c| c.hostcalls.keys()).collect();
            let width = names.iter().map(|n| n.len()).max().unwrap_or(0).max(8);
            let mut out = std::io::stdout().lock();
            write!(out, "{:width$}", "hostcall")?;
            for c in &counted {
                write!(out, "  {:>13}", c.request)?;
            }
            writeln!(out)?;
            for name in names {
                write!(out, "{name:width$}")?;
                for c in &counted {
                    write!(out, "  {:>13}", c.count(name))?;
                }
                writeln!(out)?;
            }
            write!(out, "{:width$}", "total")?;
            for c in &counted {
                write!(out, "  {:>13}", c.total)?;
            }
            writeln!(out)?;
            write!(out, "{:width$}", "wasm instructions")?;
            for c in &counted {
                write!(out, "  {:>13}", c.fuel)?;
            }
            writeln!(out)?;
            for c in &counted {
                writeln!(out, "{}: {}", c.request, c.outcome)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report_diagnostic(diagnostic: &Diagnostic, format: Format) -> ExitCode {
    match format {
        Format::Text => eprintln!("error: {diagnostic}"),
        Format::Json => eprintln!("{}", json!({"error": diagnostic})),
    }
    ExitCode::from(2)
}

fn compile(policy: &Path, output: Option<&Path>, format: Format) -> anyhow::Result<ExitCode> {
    let loaded = match load_policy(policy) {
        Ok(loaded) => loaded,
        Err(diagnostic) => return Ok(report_diagnostic(&diagnostic, format)),
    };
    let json = serde_json::to_string_pretty(&loaded.document)?;
    match output {
        Some(path) => std::fs::write(path, json + "\n")
            .with_context(|| format!("writing {}", path.display()))?,
        None => println!("{json}"),
    }
    eprintln!(
        "{}: ok, {} rules, policy {}",
        policy.display(),
        loaded.warden.rule_count(),
        loaded.warden.version()
    );
    Ok(ExitCode::SUCCESS)
}

fn check(
    policy: &Path,
    request: &Path,
    token: Option<String>,
    claims: Option<&Path>,
    wasm: &WasmArg,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let loaded = match load_policy(policy) {
        Ok(loaded) => loaded,
        Err(diagnostic) => return Ok(report_diagnostic(&diagnostic, format)),
    };
    let body = std::fs::read(request).with_context(|| format!("reading {}", request.display()))?;
    let claims_given = claims.is_some();
    let (config, token) = match (token, claims) {
        (Some(token), _) => (loaded.plugin_configuration()?, token),
        (None, Some(claims)) => {
            let claims: Value = serde_json::from_slice(
                &std::fs::read(claims).with_context(|| format!("reading {}", claims.display()))?,
            )
            .context("claims must be a JSON object")?;
            let (config, minter) =
                Minter::for_document(&loaded.document, TEST_NOW).map_err(anyhow::Error::msg)?;
            (config, minter.token(&claims).map_err(anyhow::Error::msg)?)
        }
        (None, None) => anyhow::bail!("give --token or --claims"),
    };
    let module = wasm.load()?;
    // Minted tokens are issued at TEST_NOW; a real token is judged now.
    let now = if claims_given { TEST_NOW } else { unix_now() };
    let mut filter = WardenFilter::start(&module, &config, now)?;
    let exchange = filter.handle(&HttpRequest::post(body).bearer(&token))?;
    let verdict = Verdict::from_exchange(&exchange);
    match format {
        Format::Json => match &exchange.audit {
            Some(audit) => println!("{audit}"),
            None => println!("{}", serde_json::to_string(&verdict)?),
        },
        Format::Text => {
            println!("decision: {}", verdict.decision.as_deref().unwrap_or("-"));
            println!("rule:     {}", verdict.rule.as_deref().unwrap_or("-"));
            println!("owner:    {}", verdict.owner.as_deref().unwrap_or("-"));
            println!("reason:   {}", verdict.reason.as_deref().unwrap_or("-"));
            match verdict.status {
                Some(status) => println!("status:   {status}"),
                None => println!("status:   forwarded"),
            }
        }
    }
    Ok(if verdict.is_allowed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn test(suites: &[PathBuf], wasm: &WasmArg, format: Format) -> anyhow::Result<ExitCode> {
    let module = wasm.load()?;
    let (mut passed, mut failed) = (0, 0);
    let mut reports = Vec::new();
    let mut out = std::io::stdout().lock();
    for path in suites {
        let report = match run_suite(&module, path) {
            Ok(report) => report,
            Err(SuiteError::Policy(diagnostic)) => {
                return Ok(report_diagnostic(&diagnostic, format));
            }
            Err(other) => anyhow::bail!("{other}"),
        };
        passed += report.passed();
        failed += report.failed();
        if format == Format::Text {
            for case in &report.cases {
                if case.passed {
                    writeln!(out, "ok    {}: {}", path.display(), case.name)?;
                } else {
                    writeln!(out, "FAIL  {}: {}", path.display(), case.name)?;
                    writeln!(out, "      expected: {}", case.expected.summary())?;
                    writeln!(out, "      actual:   {}", case.actual.summary())?;
                    for problem in &case.problems {
                        writeln!(out, "      - {problem}")?;
                    }
                }
            }
        }
        reports.push(report);
    }
    match format {
        Format::Text => writeln!(out, "{passed} passed, {failed} failed")?,
        Format::Json => writeln!(
            out,
            "{}",
            json!({"suites": reports, "passed": passed, "failed": failed})
        )?,
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn version(wasm: &WasmArg) -> anyhow::Result<ExitCode> {
    println!("{CLI_BUILD}");
    let chosen = match embedded::choose(wasm.wasm.as_deref()) {
        Ok(chosen) => chosen,
        Err(error) => {
            println!("filter module: none ({error})");
            return Ok(ExitCode::from(2));
        }
    };
    let build = embedded::module_build(&chosen.compile()?)?;
    println!("filter module: {build}");
    println!("  from:   {}", chosen.origin);
    println!("  sha256: {}", chosen.sha256());
    println!("  size:   {} bytes", chosen.bytes.len());
    Ok(ExitCode::SUCCESS)
}

fn write_embedded(output: &Path) -> anyhow::Result<ExitCode> {
    let Some(bytes) = embedded::EMBEDDED_WASM else {
        anyhow::bail!("this warden was built without a filter module: rebuild it with `make cli`");
    };
    std::fs::write(output, bytes).with_context(|| format!("writing {}", output.display()))?;
    println!("{}  {}", embedded::sha256_hex(bytes), output.display());
    Ok(ExitCode::SUCCESS)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
