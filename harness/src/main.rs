//! `warden`: compile policies into the filter's plugin configuration, render
//! a ready Envoy bootstrap, and judge one request against a policy.

mod envoy;
mod load;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

/// Warden: MCP authorization for proxy-wasm hosts.
#[derive(Parser)]
#[command(name = "warden", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, Default)]
enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a policy and print the filter's plugin configuration (JSON).
    ///
    /// `identity.jwks_file` is read (relative to the policy file) and inlined
    /// as `identity.jwks`. Exit status 2 when the policy is invalid.
    Compile {
        /// The policy file (YAML or JSON).
        policy: PathBuf,
        /// Write the configuration here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Print a complete Envoy bootstrap that runs the filter with a policy.
    Envoy {
        /// The policy file (YAML or JSON).
        policy: PathBuf,
        /// Path of the built filter (`warden_filter.wasm`), as Envoy should
        /// open it: a relative path is resolved from Envoy's working directory.
        #[arg(long)]
        wasm: PathBuf,
        /// Listener address of the MCP endpoint.
        #[arg(long, default_value = "127.0.0.1:10000")]
        listen: String,
        /// Address of the MCP server Envoy forwards allowed requests to.
        #[arg(long, default_value = "127.0.0.1:8000")]
        upstream: String,
        /// Envoy admin address (stats, readiness).
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: String,
    },
    /// Judge one MCP request (JSON-RPC body) for one set of token claims,
    /// with the native core. Exit 0 allow, 1 deny, 2 usage or invalid policy.
    Check {
        #[arg(long)]
        policy: PathBuf,
        /// The JSON-RPC request body.
        #[arg(long)]
        request: PathBuf,
        /// JSON claims of the caller; a token is minted for them with the
        /// demo key, so the policy must trust `examples/keys/demo.jwks.json`.
        #[arg(long)]
        claims: PathBuf,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
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
        Command::Compile { policy, output } => {
            let loaded = load::load_policy(&policy)?;
            let json = serde_json::to_string_pretty(&loaded.document)?;
            match output {
                Some(path) => std::fs::write(&path, json + "\n")
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
        Command::Envoy {
            policy,
            wasm,
            listen,
            upstream,
            admin,
        } => {
            let loaded = load::load_policy(&policy)?;
            let plugin_config = serde_json::to_string(&loaded.document)?;
            let wasm = std::path::absolute(&wasm)
                .with_context(|| format!("resolving {}", wasm.display()))?;
            let bootstrap = envoy::bootstrap(
                &envoy::Addresses::parse(&listen, &upstream, &admin)?,
                &wasm,
                &plugin_config,
            )?;
            print!("{bootstrap}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            policy,
            request,
            claims,
            format,
        } => check(&policy, &request, &claims, format),
    }
}

fn check(
    policy: &std::path::Path,
    request: &std::path::Path,
    claims: &std::path::Path,
    format: Format,
) -> anyhow::Result<ExitCode> {
    use policy_sdk::testing::{DemoIssuer, TEST_NOW, standard_claims};
    use policy_sdk::{BodyVerdict, HeadVerdict, RequestHead};

    let loaded = load::load_policy(policy)?;
    let body = std::fs::read(request).with_context(|| format!("reading {}", request.display()))?;
    let claims: serde_json::Value = serde_json::from_slice(
        &std::fs::read(claims).with_context(|| format!("reading {}", claims.display()))?,
    )
    .context("claims must be a JSON object")?;
    let now = TEST_NOW;
    let token = DemoIssuer::new()?.token(now, standard_claims(now, claims))?;
    let authorization = format!("Bearer {token}");
    let head = RequestHead {
        method: "POST",
        path: "/mcp",
        authorization: Some(&authorization),
        content_length: None,
        request_id: Some("warden-check"),
        now_unix_nanos: u128::from(now) * 1_000_000_000,
    };
    let (audit, status) = match loaded.warden.judge_head(&head) {
        HeadVerdict::ReadBody(identity) => {
            match loaded.warden.judge_body(&identity, &body, &head) {
                BodyVerdict::Forward(audit) => (audit, None),
                BodyVerdict::Respond(reply, audit) => (audit, Some(reply.status)),
            }
        }
        HeadVerdict::Respond(reply, audit) => (audit, Some(reply.status)),
        HeadVerdict::Forward(audit) => (audit, None),
        HeadVerdict::Pass => anyhow::bail!("the request was not judged"),
    };
    match format {
        Format::Json => println!("{}", audit.to_json_line()),
        Format::Text => {
            println!("decision: {}", audit.decision);
            println!("rule:     {}", audit.rule.as_deref().unwrap_or("-"));
            println!("owner:    {}", audit.owner.as_deref().unwrap_or("-"));
            println!("reason:   {}", audit.reason);
            if let Some(status) = status {
                println!("status:   {status}");
            }
        }
    }
    Ok(if audit.is_allowed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
