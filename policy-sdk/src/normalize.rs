//! Canonical forms of file paths and resource URIs, for prefix and glob
//! rules.
//!
//! Warden decides on its own reading of a path or URI, and the server acts
//! on its own. Where mainstream readers (WHATWG URL parsers, RFC 3986
//! resolvers, servers that percent-decode and servers that do not, Windows
//! and POSIX path APIs, NFKC folding) could read the same text differently,
//! the text has no canonical form: it is refused, and a refusal while
//! evaluating a rule denies the request. So a deny rule cannot be slipped
//! past and an allow rule never covers more than the server will read.
//!
//! Refused everywhere: control characters, any non-ASCII character (look-
//! alikes of `.`, `/` and `\` such as U+FF0E, U+2025, U+FF0F, U+FF3C fold to
//! them under NFKC), backslashes, empty segments (`a//b`; a trailing `/` is
//! dropped), `.` and `..` segments (a `.` or `..` host too). Refused in
//! file paths: any percent-escape (one server decodes it, another opens the
//! literal name), `?` and `#`.
//! Refused in the authority and path of URIs: percent-escapes of unreserved
//! characters, of `.`, `/`, `\`, `%`, `?`, `#`, of control and of non-ASCII
//! bytes, any percent-escape in the authority, userinfo, a port on a scheme
//! without ports, a `file:` authority other than empty or `localhost`, and a
//! scheme that has an authority written without `//`.
//!
//! Canonicalised, because every reader agrees: the scheme in lower case, the
//! host of `http`, `https`, `ws`, `wss` and `ftp` in lower case, their
//! default port dropped, and `file://localhost/` written `file:///`. The
//! query and fragment are kept as written and never resolved.

/// Why a path or URI has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("contains a control character")]
    ControlCharacter,
    #[error(
        "contains the non-ASCII character `{0}` (U+{code:04X}); readers may fold it to `.`, `/` or `\\`",
        code = u32::from(*.0)
    )]
    NonAscii(char),
    #[error("contains `\\`, which some readers take as a separator")]
    Backslash,
    #[error("contains an empty segment (`//`), which readers resolve differently")]
    EmptySegment,
    #[error("contains the dot segment `{0}`, which readers resolve differently")]
    DotSegment(String),
    #[error(
        "contains the percent-escape `{0}`, which servers that decode and servers that do not read differently"
    )]
    PercentEscape(String),
    #[error("contains `{0}`, which URI readers take as the start of a query or fragment")]
    QueryOrFragment(char),
    #[error("has the authority `{0}`, which readers take apart differently")]
    Authority(String),
    #[error(
        "`file:` URI names the host `{0}`; only an empty authority or `localhost` is read as this machine"
    )]
    FileHost(String),
    #[error("`{0}:` URI has no `//` authority, which readers fill in differently")]
    MissingAuthority(String),
    #[error("contains the segment `{0}`, which Windows reads as another name ({1})")]
    WindowsSpelling(String, &'static str),
}

/// Schemes whose authority is a host name (WHATWG "special" schemes, less
/// `file`), with their default ports.
const HOST_SCHEMES: &[(&str, &str)] = &[
    ("http", "80"),
    ("https", "443"),
    ("ws", "80"),
    ("wss", "443"),
    ("ftp", "21"),
];

/// Canonical form of a file-system-like path (tool arguments): the text
/// itself, once nothing in it can be read two ways.
pub fn normalize_path(raw: &str) -> Result<String, NormalizeError> {
    check_characters(raw)?;
    if let Some(c) = raw.chars().find(|c| matches!(c, '?' | '#')) {
        return Err(NormalizeError::QueryOrFragment(c));
    }
    if let Some(escape) = percent_escapes(raw).next() {
        return Err(NormalizeError::PercentEscape(escape.text.to_owned()));
    }
    check_segments(raw.strip_prefix('/').unwrap_or(raw))?;
    check_windows_segments(raw)?;
    Ok(without_trailing_slash(raw).to_owned())
}

/// Segments Windows opens under another name (see the module comment).
fn check_windows_segments(path: &str) -> Result<(), NormalizeError> {
    for segment in path.split('/') {
        let why = if segment.ends_with(['.', ' ']) && !matches!(segment, "" | "." | "..") {
            "a trailing dot or space is dropped"
        } else if segment.contains(':') {
            "`:` names a drive or an alternate data stream"
        } else if segment
            .split('~')
            .skip(1)
            .any(|after| after.starts_with(|c: char| c.is_ascii_digit()))
        {
            "`~` and a digit is a short 8.3 name"
        } else {
            continue;
        };
        return Err(NormalizeError::WindowsSpelling(segment.to_owned(), why));
    }
    Ok(())
}

/// Canonical form of a resource URI: scheme, `//authority` when written,
/// path, then query and fragment exactly as written.
pub fn normalize_uri(raw: &str) -> Result<String, NormalizeError> {
    check_characters(raw)?;
    let Some((scheme, rest)) = split_scheme(raw) else {
        return normalize_path(raw);
    };
    let scheme = scheme.to_ascii_lowercase();
    let split = rest.find(['?', '#']).unwrap_or(rest.len());
    let (hier, tail) = rest.split_at(split);
    for escape in percent_escapes(hier) {
        if !escape_is_unambiguous(escape.byte) {
            return Err(NormalizeError::PercentEscape(escape.text.to_owned()));
        }
    }
    let host_scheme = HOST_SCHEMES.iter().find(|(s, _)| *s == scheme);
    let mut out = format!("{scheme}:");
    match hier.strip_prefix("//") {
        Some(after) => {
            let end = after.find('/').unwrap_or(after.len());
            let (authority, path) = after.split_at(end);
            out.push_str("//");
            out.push_str(&canonical_authority(&scheme, host_scheme, authority)?);
            // `path` is empty or starts with `/`.
            check_segments(path.strip_prefix('/').unwrap_or(path))?;
            if scheme == "file" {
                check_windows_segments(path)?;
            }
            // `//host/` is written `//host`, as `//host/a/` is `//host/a`.
            out.push_str(path.strip_suffix('/').unwrap_or(path));
        }
        None => {
            if host_scheme.is_some() || scheme == "file" {
                return Err(NormalizeError::MissingAuthority(scheme));
            }
            check_segments(hier.strip_prefix('/').unwrap_or(hier))?;
            out.push_str(without_trailing_slash(hier));
        }
    }
    out.push_str(tail);
    Ok(out)
}

/// `a/b/` is written `a/b`, as the old canonical form did, so a glob such as
/// `docs://internal/*` also covers `docs://internal/x/`; `/` stays `/`.
fn without_trailing_slash(path: &str) -> &str {
    match path.strip_suffix('/') {
        Some(stripped) if !stripped.is_empty() => stripped,
        _ => path,
    }
}

fn canonical_authority(
    scheme: &str,
    host_scheme: Option<&(&str, &str)>,
    authority: &str,
) -> Result<String, NormalizeError> {
    let odd = || NormalizeError::Authority(authority.to_owned());
    if authority.contains(['%', '@']) {
        return Err(odd());
    }
    // A host `.` or `..` is a dot segment to a reader that takes off
    // `scheme://` and reads the rest as a path (a `docs://{path}` template).
    let host = authority.split(':').next().unwrap_or_default();
    if matches!(host, "." | "..") {
        return Err(NormalizeError::DotSegment(host.to_owned()));
    }
    if scheme == "file" {
        return if authority.is_empty() || authority.eq_ignore_ascii_case("localhost") {
            Ok(String::new())
        } else {
            Err(NormalizeError::FileHost(authority.to_owned()))
        };
    }
    let Some((_, default_port)) = host_scheme else {
        // An opaque host: kept as written, case included (WHATWG keeps it).
        return if authority.contains(':') {
            Err(odd())
        } else {
            Ok(authority.to_owned())
        };
    };
    let lower = authority.to_ascii_lowercase();
    if lower.starts_with('[') {
        // An IPv6 literal: kept, lower-cased.
        return Ok(lower);
    }
    match lower.split_once(':') {
        None => Ok(lower),
        Some((host, port)) if port == *default_port || port.is_empty() => Ok(host.to_owned()),
        Some((_, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !port.starts_with('0') => {
            Ok(lower)
        }
        Some(_) => Err(odd()),
    }
}

/// Control characters, non-ASCII characters and backslashes, anywhere.
fn check_characters(raw: &str) -> Result<(), NormalizeError> {
    for c in raw.chars() {
        if c.is_control() {
            return Err(NormalizeError::ControlCharacter);
        }
        if !c.is_ascii() {
            return Err(NormalizeError::NonAscii(c));
        }
        if c == '\\' {
            return Err(NormalizeError::Backslash);
        }
    }
    Ok(())
}

/// `/`-separated segments after the leading `/`: none empty except a
/// trailing one, none `.` or `..`.
fn check_segments(path: &str) -> Result<(), NormalizeError> {
    if path.is_empty() {
        return Ok(());
    }
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.into_iter().enumerate() {
        match segment {
            "" if i == last => {}
            "" => return Err(NormalizeError::EmptySegment),
            "." | ".." => return Err(NormalizeError::DotSegment(segment.to_owned())),
            _ => {}
        }
    }
    Ok(())
}

struct Escape<'a> {
    text: &'a str,
    byte: u8,
}

/// Every `%` followed by two hex digits. A `%` without them is a literal
/// `%` to every reader.
fn percent_escapes(text: &str) -> impl Iterator<Item = Escape<'_>> {
    text.match_indices('%').filter_map(|(i, _)| {
        let escape = text.get(i..i + 3)?;
        let byte = u8::from_str_radix(escape.get(1..)?, 16).ok()?;
        Some(Escape { text: escape, byte })
    })
}

/// Whether decoding the escape cannot change how the URI is cut up or
/// matched: not an unreserved character (RFC 3986 readers decode those, others
/// do not), not `.`, `/`, `\`, `%`, `?`, `#`, not a control character, not a
/// byte of a non-ASCII character.
fn escape_is_unambiguous(byte: u8) -> bool {
    (byte.is_ascii_graphic() || byte == b' ')
        && !byte.is_ascii_alphanumeric()
        && !matches!(
            byte,
            b'-' | b'_' | b'~' | b'.' | b'/' | b'\\' | b'%' | b'?' | b'#'
        )
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

/// Whether canonical `text` lies at or below canonical `prefix`, segment by
/// segment: `/srv/public` covers `/srv/public` and `/srv/public/x`, never
/// `/srv/publicity`. For URIs a query or fragment also ends the path.
pub fn within_prefix(text: &str, prefix: &str) -> bool {
    within(text, prefix, &['/', '?', '#'])
}

/// [`within_prefix`] for file paths, where only `/` separates segments:
/// `/srv/public?backup` is not below `/srv/public/`.
pub fn within_path_prefix(text: &str, prefix: &str) -> bool {
    within(text, prefix, &['/'])
}

fn within(text: &str, prefix: &str, boundaries: &[char]) -> bool {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() || trimmed.ends_with(':') || trimmed.ends_with(":/") {
        // "/" or "scheme:" or "scheme://" or "scheme:///": everything that
        // starts with it.
        return text.starts_with(prefix);
    }
    text == trimmed
        || text
            .strip_prefix(trimmed)
            .is_some_and(|rest| rest.starts_with(boundaries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_are_kept_as_written() {
        assert_eq!(
            normalize_path("/srv/public/a.txt").unwrap(),
            "/srv/public/a.txt"
        );
        assert_eq!(normalize_path("/srv/public/").unwrap(), "/srv/public");
        assert_eq!(normalize_path("/").unwrap(), "/");
        assert_eq!(normalize_path("/srv/a%b").unwrap(), "/srv/a%b");
        assert_eq!(normalize_path("a/b..c/.d").unwrap(), "a/b..c/.d");
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        use NormalizeError::*;
        for (raw, wanted) in [
            ("/srv/public/../secret", DotSegment("..".into())),
            ("/srv/./public", DotSegment(".".into())),
            ("/../etc/passwd", DotSegment("..".into())),
            ("/srv/public/%2e%2e/secret", PercentEscape("%2e".into())),
            ("/srv/public/%252e%252e/secret", PercentEscape("%25".into())),
            ("/srv/public%2fx", PercentEscape("%2f".into())),
            ("/srv/pub%6cic/x", PercentEscape("%6c".into())),
            ("/shared//etc/passwd", EmptySegment),
            ("//srv/public", EmptySegment),
            ("\\srv\\public\\..\\secret", Backslash),
            ("/srv/public?backup/x", QueryOrFragment('?')),
            ("/srv/public#x", QueryOrFragment('#')),
            ("/srv/public/\u{ff0e}\u{ff0e}/x", NonAscii('\u{ff0e}')),
            ("/srv/public/\u{2025}/x", NonAscii('\u{2025}')),
            ("/srv/%00", PercentEscape("%00".into())),
            ("/srv/\u{0}", ControlCharacter),
            (
                "/srv/secret./key",
                windows("secret.", "a trailing dot or space is dropped"),
            ),
            (
                "/srv/secret /key",
                windows("secret ", "a trailing dot or space is dropped"),
            ),
            (
                "/srv/secret...",
                windows("secret...", "a trailing dot or space is dropped"),
            ),
            (
                "/srv/key:$DATA",
                windows("key:$DATA", "`:` names a drive or an alternate data stream"),
            ),
            (
                "C:/secret",
                windows("C:", "`:` names a drive or an alternate data stream"),
            ),
            (
                "/srv/SECRET~1/key",
                windows("SECRET~1", "`~` and a digit is a short 8.3 name"),
            ),
        ] {
            assert_eq!(normalize_path(raw), Err(wanted), "{raw}");
        }
    }

    fn windows(segment: &str, why: &'static str) -> NormalizeError {
        NormalizeError::WindowsSpelling(segment.to_owned(), why)
    }

    #[test]
    fn windows_spellings_are_refused_in_file_uris_only() {
        assert_eq!(
            normalize_uri("file:///shared/secret./key"),
            Err(windows("secret.", "a trailing dot or space is dropped"))
        );
        assert_eq!(
            normalize_uri("docs://public/v1.")
                .map_err(|e| e.to_string())
                .as_deref(),
            Ok("docs://public/v1.")
        );
        // Names that merely look alike are kept.
        for plain in [
            "/srv/a~b",
            "/srv/~x",
            "/srv/.hidden",
            "/srv/a.b",
            "/srv/v1.2/x",
        ] {
            assert_eq!(normalize_path(plain).as_deref(), Ok(plain), "{plain}");
        }
    }

    #[test]
    fn uris_canonicalise_only_what_readers_agree_on() {
        for (raw, wanted) in [
            ("DOCS://public/intro", "docs://public/intro"),
            ("docs://PUBLIC/intro", "docs://PUBLIC/intro"),
            ("HTTPS://Example.COM:443/A", "https://example.com/A"),
            ("http://Example.com:8080/", "http://example.com:8080"),
            ("docs://public/", "docs://public"),
            ("file:///", "file://"),
            ("file:///shared/a", "file:///shared/a"),
            ("file://LOCALHOST/shared/a", "file:///shared/a"),
            ("docs://public/a%20b", "docs://public/a%20b"),
            ("docs://public/x?a/../b#c//d", "docs://public/x?a/../b#c//d"),
            ("urn:isbn:123", "urn:isbn:123"),
            ("docs:///public/x", "docs:///public/x"),
        ] {
            assert_eq!(normalize_uri(raw).unwrap(), wanted, "{raw}");
        }
    }

    #[test]
    fn ambiguous_uris_are_refused() {
        use NormalizeError::*;
        for (raw, wanted) in [
            (
                "docs://internal/..%2fpublic%2fx/../roadmap",
                PercentEscape("%2f".into()),
            ),
            ("docs://public/../internal/x", DotSegment("..".into())),
            // Found by the `normalize` fuzz target: a dot segment as the host.
            ("http://../a", DotSegment("..".into())),
            ("docs://../internal/x", DotSegment("..".into())),
            ("docs://./x", DotSegment(".".into())),
            ("https://..:8443/x", DotSegment("..".into())),
            ("file://../etc/passwd", DotSegment("..".into())),
            ("docs://public/%2E%2E/internal", PercentEscape("%2E".into())),
            ("docs://public/.%2e/internal", PercentEscape("%2e".into())),
            ("docs://public//intro", EmptySegment),
            ("docs:\\\\public\\intro", Backslash),
            ("docs://public\\..\\internal", Backslash),
            ("docs://public/%5c", PercentEscape("%5c".into())),
            ("docs://pub%6cic/x", PercentEscape("%6c".into())),
            ("docs://pub%20lic/x", Authority("pub%20lic".into())),
            ("docs://public/%69ntro", PercentEscape("%69".into())),
            (
                "docs://public@internal/x",
                Authority("public@internal".into()),
            ),
            ("docs://public:1/x", Authority("public:1".into())),
            ("file://shared/a", FileHost("shared".into())),
            ("file://SHARED/a", FileHost("SHARED".into())),
            ("file:/shared/a", MissingAuthority("file".into())),
            ("http:example.com/x", MissingAuthority("http".into())),
            ("docs://public/\u{ff0e}\u{ff0e}/x", NonAscii('\u{ff0e}')),
            ("docs://public/%EF%BC%8E/x", PercentEscape("%EF".into())),
            ("docs://public/\u{2215}x", NonAscii('\u{2215}')),
        ] {
            assert_eq!(normalize_uri(raw), Err(wanted), "{raw}");
        }
    }

    #[test]
    fn messages_name_the_problem() {
        assert_eq!(
            NormalizeError::NonAscii('\u{ff0e}').to_string(),
            "contains the non-ASCII character `\u{ff0e}` (U+FF0E); readers may fold it to `.`, `/` or `\\`"
        );
    }

    #[test]
    fn prefixes_respect_segments() {
        assert!(within_prefix("/srv/public/x", "/srv/public/"));
        assert!(within_prefix("/srv/public", "/srv/public/"));
        assert!(!within_prefix("/srv/publicity", "/srv/public"));
        assert!(within_prefix("docs://public/intro", "docs://public/"));
        assert!(within_prefix("docs://public?x", "docs://public/"));
        assert!(!within_prefix("docs://publicity/intro", "docs://public/"));
        assert!(within_prefix("/anything", "/"));
        assert!(within_prefix("docs://x", "docs://"));
        assert!(within_prefix("file:///shared/a", "file:///shared/"));
        assert!(!within_path_prefix("/srv/public?backup/x", "/srv/public/"));
        assert!(!within_path_prefix("/srv/public#x", "/srv/public/"));
        assert!(within_path_prefix("/srv/public/x", "/srv/public/"));
    }
}
