//! Reading a policy file and compiling it, so every error surfaces before a
//! proxy sees the configuration, as a diagnostic that points at the file,
//! line and field.

use std::path::{Path, PathBuf};

use policy_sdk::config::DocumentError;
use policy_sdk::{ConfigError, PolicyDocument, Warden};
use serde::Serialize;

use crate::locate::SourceMap;

pub struct LoadedPolicy {
    /// The document with key files inlined: the filter's plugin configuration.
    pub document: PolicyDocument,
    pub warden: Warden,
}

impl LoadedPolicy {
    /// The plugin configuration the filter reads (compact JSON).
    pub fn plugin_configuration(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(&self.document)
    }
}

/// Why a policy file was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The field, as a path (`rules[7].principal.types[0]`), when known.
    pub field: Option<String>,
    pub message: String,
    pub help: Option<String>,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)?;
        if let Some(field) = &self.field {
            write!(f, "\n  field: {field}")?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

/// `… at line L column C` in parser messages.
fn parser_position(message: &str) -> Option<(usize, usize)> {
    let rest = &message[message.rfind("at line ")? + "at line ".len()..];
    let mut words = rest.split_whitespace();
    let line = words.next()?.trim_end_matches(',').parse().ok()?;
    let column = match (words.next(), words.next()) {
        (Some("column"), Some(c)) => c
            .trim_end_matches(|ch: char| !ch.is_ascii_digit())
            .parse()
            .ok()?,
        _ => 1,
    };
    Some((line, column))
}

/// A leading `path.to[0].field:` in a message.
fn leading_path(message: &str) -> Option<String> {
    let (head, _) = message.split_once(": ")?;
    let plausible = !head.is_empty()
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']' | '-'));
    plausible.then(|| head.to_owned())
}

fn diagnostic(
    path: &Path,
    map: &SourceMap,
    field: Option<String>,
    message: String,
    help: Option<String>,
) -> Box<Diagnostic> {
    let field = field.or_else(|| leading_path(&message));
    let position =
        parser_position(&message).or_else(|| field.as_deref().and_then(|f| map.position(f)));
    Box::new(Diagnostic {
        file: path.to_path_buf(),
        line: position.map(|p| p.0),
        column: position.map(|p| p.1),
        field,
        message,
        help,
    })
}

/// Where the fields of the policy file are written. The text is read only
/// to locate an error; an unreadable file is the diagnostic itself.
fn source_map(path: &Path) -> Result<SourceMap, Box<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Box::new(Diagnostic {
            file: path.to_path_buf(),
            line: None,
            column: None,
            field: None,
            message: format!("cannot read the policy: {e}"),
            help: None,
        })
    })?;
    Ok(SourceMap::new(&text))
}

/// Reads and compiles a policy file.
pub fn load_policy(path: &Path) -> Result<LoadedPolicy, Box<Diagnostic>> {
    let document = PolicyDocument::load_file(path).map_err(|e| {
        let map = match source_map(path) {
            Ok(map) => map,
            Err(unreadable) => return unreadable,
        };
        let (DocumentError::Io(message)
        | DocumentError::Shape(message)
        | DocumentError::Json(message)
        | DocumentError::Yaml(message)) = e;
        diagnostic(path, &map, None, message, None)
    })?;
    let warden = Warden::compile(&document).map_err(|e| {
        let map = match source_map(path) {
            Ok(map) => map,
            Err(unreadable) => return unreadable,
        };
        let help = e.help().map(str::to_owned);
        let field = match &e {
            ConfigError::Compile(c) => {
                let rule = map.rule_path(&c.rule).unwrap_or_else(|| "rules".to_owned());
                Some(if c.field.is_empty() {
                    rule
                } else if c.field.starts_with('[') {
                    format!("{rule}{}", c.field)
                } else {
                    format!("{rule}.{}", c.field)
                })
            }
            ConfigError::Filter { field, .. } => Some(format!("filter.{field}")),
            ConfigError::Version { .. } => Some("version".to_owned()),
            _ => None,
        };
        diagnostic(path, &map, field, e.to_string(), help)
    })?;
    Ok(LoadedPolicy { document, warden })
}
