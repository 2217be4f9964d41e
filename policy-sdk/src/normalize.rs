//! Canonical forms of file paths and resource URIs, so that a prefix or glob
//! in a policy cannot be escaped by `..`, `%2e%2e`, `//`, backslashes or
//! scheme case.
//!
//! The canonical form is what a server that decodes and resolves the text
//! would act on: backslashes become `/`, percent-escapes are decoded until the
//! text is stable (double encoding included), repeated slashes collapse, `.`
//! segments vanish and `..` removes the segment before it. A `..` that would
//! climb above the start (for URIs: above the authority) is an error, and an
//! error while evaluating a rule denies the request.

/// Why a path or URI has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("`..` climbs above the root")]
    EscapesRoot,
    #[error("contains a control character")]
    ControlCharacter,
    #[error("percent-encoding does not decode to UTF-8")]
    BadEncoding,
    #[error("percent-encoding is nested too deeply")]
    TooManyEncodingLayers,
}

const MAX_DECODE_ROUNDS: usize = 4;

/// Canonical form of a file-system-like path (tool arguments).
pub fn normalize_path(raw: &str) -> Result<String, NormalizeError> {
    let decoded = decode_fully(raw)?;
    let absolute = decoded.starts_with('/');
    let segments = resolve_segments(decoded.split('/'))?;
    let joined = segments.join("/");
    Ok(if absolute {
        format!("/{joined}")
    } else {
        joined
    })
}

/// Canonical form of a resource URI: the scheme (and, for schemes whose
/// authority is a host name, the authority) in lower case, then the rest as
/// a path whose first segment is the authority.
pub fn normalize_uri(raw: &str) -> Result<String, NormalizeError> {
    let decoded = decode_fully(raw)?;
    let Some((scheme, rest)) = split_scheme(&decoded) else {
        return normalize_path(&decoded);
    };
    let scheme = scheme.to_ascii_lowercase();
    let has_authority = rest.starts_with("//");
    let segments = resolve_segments(rest.split('/'))?;
    let mut segments = segments.into_iter();
    let mut out = format!("{scheme}:");
    if has_authority {
        let authority = segments.next().unwrap_or_default();
        let authority = if matches!(scheme.as_str(), "http" | "https" | "ws" | "wss" | "file") {
            authority.to_ascii_lowercase()
        } else {
            authority.to_owned()
        };
        out.push_str("//");
        out.push_str(&authority);
        for s in segments {
            out.push('/');
            out.push_str(s);
        }
    } else {
        let rest: Vec<&str> = segments.collect();
        if rest_is_absolute(&decoded, &scheme) {
            out.push('/');
        }
        out.push_str(&rest.join("/"));
    }
    Ok(out)
}

fn rest_is_absolute(decoded: &str, scheme: &str) -> bool {
    decoded
        .get(scheme.len() + 1..)
        .is_some_and(|rest| rest.starts_with('/'))
}

fn split_scheme(text: &str) -> Option<(&str, &str)> {
    let colon = text.find(':')?;
    let scheme = text.get(..colon)?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then(|| (scheme, text.get(colon + 1..).unwrap_or_default()))
}

/// Removes empty and `.` segments, applies `..`; errors when `..` has
/// nothing left to remove.
fn resolve_segments<'a>(
    parts: impl Iterator<Item = &'a str>,
) -> Result<Vec<&'a str>, NormalizeError> {
    let mut out: Vec<&str> = Vec::new();
    for part in parts {
        match part {
            "" | "." => {}
            ".." => {
                out.pop().ok_or(NormalizeError::EscapesRoot)?;
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

fn decode_fully(raw: &str) -> Result<String, NormalizeError> {
    if raw.chars().any(char::is_control) {
        return Err(NormalizeError::ControlCharacter);
    }
    let mut current = raw.replace('\\', "/");
    for _ in 0..MAX_DECODE_ROUNDS {
        let next = percent_decode(&current)?;
        if next == current {
            return Ok(current);
        }
        if next.chars().any(char::is_control) {
            return Err(NormalizeError::ControlCharacter);
        }
        current = next.replace('\\', "/");
    }
    Err(NormalizeError::TooManyEncodingLayers)
}

fn percent_decode(text: &str) -> Result<String, NormalizeError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| {
                let h = std::str::from_utf8(h).ok()?;
                u8::from_str_radix(h, 16).ok()
            });
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| NormalizeError::BadEncoding)
}

/// Whether canonical `text` lies at or below canonical `prefix`, segment by
/// segment: `/srv/public` covers `/srv/public` and `/srv/public/x`, never
/// `/srv/publicity`.
pub fn within_prefix(text: &str, prefix: &str) -> bool {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() || trimmed.ends_with(':') {
        // "/" or "scheme:" or "scheme://": everything that starts with it.
        return text.starts_with(prefix);
    }
    if trimmed.ends_with(":/") {
        return text.starts_with(prefix);
    }
    text == trimmed
        || text.strip_prefix(trimmed).is_some_and(|rest| {
            rest.starts_with('/') || rest.starts_with('?') || rest.starts_with('#')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_dots_slashes_backslashes_and_encodings() {
        assert_eq!(
            normalize_path("/srv/public/a.txt").unwrap(),
            "/srv/public/a.txt"
        );
        assert_eq!(
            normalize_path("/srv/public/../secret").unwrap(),
            "/srv/secret"
        );
        assert_eq!(
            normalize_path("/srv/public/%2e%2e/secret").unwrap(),
            "/srv/secret"
        );
        assert_eq!(
            normalize_path("/srv/public/%252e%252e/secret").unwrap(),
            "/srv/secret"
        );
        assert_eq!(normalize_path("/srv//public///x").unwrap(), "/srv/public/x");
        assert_eq!(
            normalize_path("\\srv\\public\\..\\secret").unwrap(),
            "/srv/secret"
        );
        assert_eq!(normalize_path("/srv/./public/.").unwrap(), "/srv/public");
        assert_eq!(
            normalize_path("/../etc/passwd"),
            Err(NormalizeError::EscapesRoot)
        );
        assert_eq!(
            normalize_path("a/../../b"),
            Err(NormalizeError::EscapesRoot)
        );
        assert_eq!(
            normalize_path("/srv/%00"),
            Err(NormalizeError::ControlCharacter)
        );
        assert_eq!(normalize_path("/srv/%ff"), Err(NormalizeError::BadEncoding));
    }

    #[test]
    fn uris_keep_their_authority_and_lowercase_the_scheme() {
        assert_eq!(
            normalize_uri("DOCS://public/intro").unwrap(),
            "docs://public/intro"
        );
        assert_eq!(
            normalize_uri("docs://public/../internal/x").unwrap(),
            "docs://internal/x"
        );
        assert_eq!(
            normalize_uri("docs://public/%2E%2E/internal").unwrap(),
            "docs://internal"
        );
        assert_eq!(
            normalize_uri("docs://public//intro").unwrap(),
            "docs://public/intro"
        );
        assert_eq!(
            normalize_uri("docs:\\\\public\\intro").unwrap(),
            "docs://public/intro"
        );
        assert_eq!(
            normalize_uri("HTTPS://Example.COM/A").unwrap(),
            "https://example.com/A"
        );
        assert_eq!(normalize_uri("file:///etc/x/../y").unwrap(), "file://etc/y");
        assert_eq!(
            normalize_uri("docs://public/../../x"),
            Err(NormalizeError::EscapesRoot)
        );
        assert_eq!(normalize_uri("urn:isbn:123").unwrap(), "urn:isbn:123");
    }

    #[test]
    fn prefixes_respect_segments() {
        assert!(within_prefix("/srv/public/x", "/srv/public/"));
        assert!(within_prefix("/srv/public", "/srv/public/"));
        assert!(!within_prefix("/srv/publicity", "/srv/public"));
        assert!(within_prefix("docs://public/intro", "docs://public/"));
        assert!(!within_prefix("docs://publicity/intro", "docs://public/"));
        assert!(within_prefix("/anything", "/"));
        assert!(within_prefix("docs://x", "docs://"));
    }
}
