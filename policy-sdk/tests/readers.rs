//! Differential tests: Warden's reading of resource URIs and file paths
//! against the readers a server may use.
//!
//! Warden allows a value when its canonical form lies under an allowed
//! prefix. The server does not use Warden's reading: it parses the URI with a
//! WHATWG parser (`url`, the parser behind pydantic's `AnyUrl`), may
//! percent-decode the segments once or until stable, may fold them with NFKC,
//! may take `\` as a separator, may join them onto a directory (where an empty
//! segment restarts at the root, as `os.path.join` does with an absolute
//! part). For every generated spelling that Warden accepts as under the
//! prefix, every one of those readings must be under it too: Warden never
//! allows what a reader resolves outside.

#![expect(
    clippy::indexing_slicing,
    reason = "small fixed test tables; a wrong index should fail loudly"
)]

use policy_sdk::normalize::{normalize_path, normalize_uri, within_path_prefix, within_prefix};
use unicode_normalization::UnicodeNormalization;
use url::Url;

use std::sync::OnceLock;

/// Spellings of a dot segment: plain, percent-encoded (once, twice, mixed
/// case), overlong UTF-8, and look-alikes that NFKC folds to dots.
const DOTS: &[&str] = &[
    "..",
    ".",
    "%2e%2e",
    "%2E%2E",
    ".%2e",
    "%2e.",
    "%2e",
    "%252e%252e",
    "%c0%ae%c0%ae",
    "\u{ff0e}\u{ff0e}",
    "\u{2025}",
    "\u{2024}\u{2024}",
    "\u{fe52}\u{fe52}",
    "%EF%BC%8E%EF%BC%8E",
    "...",
];

/// Spellings of a separator.
const SEPARATORS: &[&str] = &[
    "/",
    "//",
    "%2f",
    "%2F",
    "\\",
    "%5c",
    "%5C",
    "%252f",
    "\u{ff0f}",
    "\u{2215}",
    "\u{2044}",
    "\u{ff3c}",
    "\u{fe68}",
    "/./",
    "/%2e/",
    "%EF%BC%8F",
];

/// Tails after a head (`docs://public`, `/srv/public`, …): legitimate ones,
/// every dot/separator combination climbing to `target`, and queries and
/// fragments holding dot segments.
fn tails(target: &str) -> Vec<String> {
    let mut out = vec![
        "/intro".to_owned(),
        "/a/b.md".to_owned(),
        "/".to_owned(),
        String::new(),
        "/a%20b".to_owned(),
        "/x?/../../internal".to_owned(),
        "?/../internal".to_owned(),
        "#/../internal".to_owned(),
        "/x#a/../..".to_owned(),
        "/x?a%2f..%2f..%2finternal".to_owned(),
        "?backup/x".to_owned(),
        "#x/../y".to_owned(),
        ".".to_owned(),
        "ity/x".to_owned(),
        // Legitimate names that only look odd.
        "/.hidden".to_owned(),
        "/v1.2/notes".to_owned(),
        "/a~b/c".to_owned(),
        "/x/y/z.txt".to_owned(),
        "/a-b_c.d".to_owned(),
        // Windows spellings: a trailing dot or space, a stream, a short name.
        "/intro.".to_owned(),
        "/intro /x".to_owned(),
        "/intro:$DATA".to_owned(),
        "/INTRO~1/x".to_owned(),
    ];
    for sep in SEPARATORS {
        for dots in DOTS {
            out.push(format!("{sep}{dots}{sep}{target}"));
            out.push(format!("/x{sep}{dots}{sep}{dots}{sep}{target}"));
            out.push(format!("/{dots}/{target}"));
            out.push(format!("/{dots}{sep}{target}"));
            out.push(format!(
                "{sep}x{sep}{dots}{sep}{dots}{sep}{dots}{sep}{target}"
            ));
            out.push(format!("/x/{dots}?{sep}{target}"));
        }
        out.push(format!("{sep}{target}"));
        out.push(format!("/x{sep}{target}"));
    }
    out
}

fn uri_heads() -> Vec<&'static str> {
    vec![
        "docs://public",
        "DOCS://public",
        "Docs://public",
        "docs://PUBLIC",
        "docs://internal",
        "docs:///public",
        "docs:/public",
        "docs:public",
        "docs:////public",
        "docs://pub%6cic",
        "docs://public%2f..",
        "docs://public@internal",
        "docs://internal@public",
        "docs://public:1",
        "docs://public.",
        "docs:\\\\public",
        "docs:%2f%2fpublic",
        "docs://\u{ff50}ublic",
    ]
}

fn file_uri_heads() -> Vec<&'static str> {
    vec![
        "file:///shared",
        "FILE:///shared",
        "file:///SHARED",
        "file://shared",
        "file://SHARED",
        "file://localhost/shared",
        "file://LOCALHOST/shared",
        "file://evil/shared",
        "file:/shared",
        "file:shared",
        "file:////shared",
        "file:///shared%2f..",
        "file:\\\\\\shared",
        "file:///c:/shared",
    ]
}

fn path_heads() -> Vec<&'static str> {
    vec![
        "/srv/public",
        "/srv//public",
        "//srv/public",
        "/srv/./public",
        "/SRV/public",
        "\\srv\\public",
        "/srv/pub%6cic",
        "/srv/public.",
        "/srv/public ",
        "/srv/public%2f..",
        "srv/public",
    ]
}

/// Every spelling the issue lists, each of which a reader resolves outside
/// the prefix (or which readers disagree on), with the prefix it must not
/// pass.
const ISSUE_URIS: &[(&str, &str)] = &[
    (
        "docs://internal/..%2fpublic%2fx/../roadmap",
        "docs://public/",
    ),
    ("docs://public/..%2finternal/roadmap", "docs://public/"),
    ("docs://public/%2e%2e/internal/roadmap", "docs://public/"),
    ("docs://public/..%5cinternal", "docs://public/"),
    ("docs://public\\..\\internal\\roadmap", "docs://public/"),
    ("docs://public//intro", "docs://public/"),
    ("file:///SHARED/a", "file:///shared/"),
    ("file://shared/a", "file:///shared/"),
    ("file:///shared//etc/passwd", "file:///shared/"),
    ("docs://public/\u{ff0e}\u{ff0e}/internal", "docs://public/"),
    ("docs://public/\u{2025}/internal", "docs://public/"),
];

const ISSUE_PATHS: &[(&str, &str)] = &[
    ("/shared//etc/passwd", "/shared/"),
    ("/srv/public?backup/x", "/srv/public/"),
    ("/srv/public#x", "/srv/public/"),
    ("/srv/public/../internal/plan.md", "/srv/public/"),
    ("/srv/public/%2e%2e/internal/plan.md", "/srv/public/"),
    ("/srv/public/..%2finternal/plan.md", "/srv/public/"),
    ("/srv/public\\..\\internal\\plan.md", "/srv/public/"),
    (
        "/srv/public/\u{ff0e}\u{ff0e}/internal/plan.md",
        "/srv/public/",
    ),
    ("/srv/public/\u{2025}/internal/plan.md", "/srv/public/"),
    (
        "/srv/public/\u{fe52}\u{fe52}/internal/plan.md",
        "/srv/public/",
    ),
    ("/srv/public/..\u{ff0f}internal", "/srv/public/"),
];

/// Percent-decodes once; bytes that are not UTF-8 become U+FFFD.
fn decode_once(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn decode_fully(text: &str) -> String {
    let mut current = text.to_owned();
    for _ in 0..8 {
        let next = decode_once(&current);
        if next == current {
            break;
        }
        current = next;
    }
    current
}

/// How a server turns decoded segment text into a location.
#[derive(Clone, Copy)]
struct Server {
    decode: Decode,
    backslash_separates: bool,
    nfkc: bool,
    /// Windows drops trailing dots and spaces from names.
    windows_names: bool,
    /// An empty segment restarts at the root (`os.path.join` with an
    /// absolute part); otherwise it is skipped (POSIX `//`).
    empty_restarts: bool,
}

#[derive(Clone, Copy)]
enum Decode {
    No,
    Once,
    Fully,
}

/// Every server, built once.
fn servers() -> &'static [Server] {
    static SERVERS: OnceLock<Vec<Server>> = OnceLock::new();
    SERVERS.get_or_init(all_servers)
}

fn all_servers() -> Vec<Server> {
    let mut out = Vec::new();
    for decode in [Decode::No, Decode::Once, Decode::Fully] {
        for backslash_separates in [false, true] {
            for nfkc in [false, true] {
                for empty_restarts in [false, true] {
                    out.push(Server {
                        decode,
                        backslash_separates,
                        nfkc,
                        windows_names: backslash_separates,
                        empty_restarts,
                    });
                }
            }
        }
    }
    out
}

/// Resolves `segments` (each as the reader handed it over) from `base`.
/// `None` marks a reading that restarted at the file-system root.
fn resolve(server: Server, base: Vec<String>, segments: &[String]) -> Option<Vec<String>> {
    let mut text = segments.join("/");
    text = match server.decode {
        Decode::No => text,
        Decode::Once => decode_once(&text),
        Decode::Fully => decode_fully(&text),
    };
    if server.nfkc {
        text = text.nfkc().collect();
    }
    if server.backslash_separates {
        text = text.replace('\\', "/");
    }
    let mut out = base;
    let parts: Vec<&str> = text.split('/').collect();
    let last = parts.len().saturating_sub(1);
    for (i, part) in parts.into_iter().enumerate() {
        let part = match server.windows_names {
            // `...` trims to nothing: Windows stays where it is.
            true if part.len() > 2 && part.trim_end_matches(['.', ' ']).is_empty() => ".",
            true if part != ".." && part != "." => part.trim_end_matches(['.', ' ']),
            _ => part,
        };
        match part {
            "" if i == 0 || i == last => {}
            "" if server.empty_restarts => return None,
            "" | "." => {}
            ".." => {
                out.pop();
            }
            other => out.push(other.to_owned()),
        }
    }
    Some(out)
}

fn starts_with(reading: &[String], prefix: &[&str]) -> bool {
    reading.len() >= prefix.len() && prefix.iter().zip(reading).all(|(p, r)| p == r)
}

/// Every reading of a URI by a WHATWG parser followed by each server:
/// `Ok` when all are under `scheme://host/path…`, or when the parser
/// refuses the URI (the server cannot act on it).
fn uri_readers_agree(raw: &str, scheme: &str, host: &str, path: &[&str]) -> Result<(), String> {
    let Ok(url) = Url::parse(raw) else {
        return Ok(());
    };
    let literal_host = url.host_str().unwrap_or_default();
    if url.scheme() != scheme || literal_host != host {
        return Err(format!(
            "WHATWG reads scheme `{}` host `{literal_host}`",
            url.scheme()
        ));
    }
    let segments: Vec<String> = url
        .path_segments()
        .map(|s| s.map(str::to_owned).collect())
        .unwrap_or_default();
    for &server in servers() {
        // The server maps the host to a directory and joins the path onto it:
        // `..` may climb out of the host.
        let reading = resolve(server, vec![host.to_owned()], &segments);
        let mut wanted = vec![host];
        wanted.extend_from_slice(path);
        match reading {
            Some(r) if starts_with(&r, &wanted) => {}
            other => return Err(format!("a server reads {other:?} from {:?}", url.as_str())),
        }
    }
    Ok(())
}

/// Every reading of a file path: the servers above on the path as written,
/// and a WHATWG `file:` URL built from it (which cuts at `?` and `#`).
fn path_readers_agree(raw: &str, prefix: &[&str]) -> Result<(), String> {
    let segments = vec![raw.to_owned()];
    for &server in servers() {
        match resolve(server, Vec::new(), &segments) {
            Some(r) if raw.starts_with('/') && starts_with(&r, prefix) => {}
            other => return Err(format!("a server reads {other:?}")),
        }
    }
    if let Ok(url) = Url::parse(&format!("file://{raw}")) {
        let segments: Vec<String> = url
            .path_segments()
            .map(|s| s.map(str::to_owned).collect())
            .unwrap_or_default();
        match resolve(servers()[0], Vec::new(), &segments) {
            Some(r) if starts_with(&r, prefix) => {}
            other => return Err(format!("a file: URL reader reads {other:?}")),
        }
    }
    Ok(())
}

fn warden_allows_uri(raw: &str, prefix: &str) -> bool {
    let Ok(prefix) = normalize_uri(prefix) else {
        return false;
    };
    normalize_uri(raw).is_ok_and(|c| within_prefix(&c, &prefix))
}

fn warden_allows_path(raw: &str, prefix: &str) -> bool {
    let Ok(prefix) = normalize_path(prefix) else {
        return false;
    };
    normalize_path(raw).is_ok_and(|c| within_path_prefix(&c, &prefix))
}

struct Tally {
    variants: usize,
    allowed: usize,
    disagreements: Vec<String>,
}

/// Every head followed by every tail climbing to `target`: how many Warden
/// allows under `prefix`, and those a reader (`agree`) resolves outside.
fn check(
    heads: &[&str],
    target: &str,
    prefix: &str,
    allows: impl Fn(&str) -> bool,
    agree: impl Fn(&str) -> Result<(), String>,
) -> Tally {
    let tails = tails(target);
    let mut tally = Tally {
        variants: 0,
        allowed: 0,
        disagreements: Vec::new(),
    };
    for head in heads {
        for tail in &tails {
            let raw = format!("{head}{tail}");
            tally.variants += 1;
            if !allows(&raw) {
                continue;
            }
            tally.allowed += 1;
            if let Err(why) = agree(&raw) {
                tally
                    .disagreements
                    .push(format!("`{raw}` allowed under `{prefix}`, but {why}"));
            }
        }
    }
    tally
}

fn check_uris(heads: &[&str], target: &str, prefix: &str, host: &str, path: &[&str]) -> Tally {
    let canonical = normalize_uri(prefix).ok();
    let scheme = host_scheme(prefix);
    check(
        heads,
        target,
        prefix,
        |raw| {
            let allowed = |p: &String| normalize_uri(raw).is_ok_and(|c| within_prefix(&c, p));
            canonical.as_ref().is_some_and(allowed)
        },
        |raw| uri_readers_agree(raw, scheme, host, path),
    )
}

fn host_scheme(prefix: &str) -> &str {
    prefix.split(':').next().unwrap_or_default()
}

#[test]
fn docs_uris_allowed_by_warden_are_under_the_prefix_for_every_reader() {
    let tally = check_uris(
        &uri_heads(),
        "internal/roadmap",
        "docs://public/",
        "public",
        &[],
    );
    assert!(
        tally.disagreements.is_empty(),
        "{}",
        tally.disagreements.join("\n")
    );
    assert!(tally.variants > 5000, "{}", tally.variants);
    assert!(
        tally.allowed > 20,
        "nothing allowed: the test proves nothing"
    );
    eprintln!(
        "docs: URIs: {} variants, {} allowed, all under the prefix for every reader",
        tally.variants, tally.allowed
    );
}

#[test]
fn file_uris_allowed_by_warden_are_under_the_prefix_for_every_reader() {
    let tally = check_uris(
        &file_uri_heads(),
        "etc/passwd",
        "file:///shared/",
        "",
        &["shared"],
    );
    assert!(
        tally.disagreements.is_empty(),
        "{}",
        tally.disagreements.join("\n")
    );
    assert!(tally.variants > 4000, "{}", tally.variants);
    assert!(
        tally.allowed > 20,
        "nothing allowed: the test proves nothing"
    );
    eprintln!(
        "file: URIs: {} variants, {} allowed, all under the prefix for every reader",
        tally.variants, tally.allowed
    );
}

#[test]
fn paths_allowed_by_warden_are_under_the_prefix_for_every_reader() {
    let prefix = "/srv/public/";
    let canonical = normalize_path(prefix).ok();
    let Tally {
        variants,
        allowed,
        disagreements,
    } = check(
        &path_heads(),
        "internal/plan.md",
        prefix,
        |raw| {
            let allowed = |p: &String| normalize_path(raw).is_ok_and(|c| within_path_prefix(&c, p));
            canonical.as_ref().is_some_and(allowed)
        },
        |raw| path_readers_agree(raw, &["srv", "public"]),
    );
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    assert!(variants > 3000, "{variants}");
    assert!(allowed > 10, "nothing allowed: the test proves nothing");
    eprintln!(
        "paths: {variants} variants, {allowed} allowed, all under the prefix for every reader"
    );
}

#[test]
fn every_spelling_from_the_issue_is_refused() {
    for (raw, prefix) in ISSUE_URIS {
        // `file:///SHARED/a` is unambiguous: it is simply not below
        // `file:///shared/` (the old reading lower-cased it as a host).
        if *raw != "file:///SHARED/a" {
            assert!(normalize_uri(raw).is_err(), "`{raw}` was not refused");
        }
        assert!(!warden_allows_uri(raw, prefix), "{raw}");
    }
    // The query is never resolved: this stays a query on `docs://public/x`.
    assert_eq!(
        normalize_uri("docs://public/x?/../../internal").unwrap(),
        "docs://public/x?/../../internal"
    );
    assert!(!warden_allows_uri(
        "docs://public/x?/../../internal",
        "docs://internal/"
    ));
    for (raw, prefix) in ISSUE_PATHS {
        assert!(normalize_path(raw).is_err(), "`{raw}` was not refused");
        assert!(!warden_allows_path(raw, prefix), "{raw}");
    }
}

#[test]
fn legitimate_spellings_still_pass() {
    for (raw, prefix) in [
        ("docs://public/intro", "docs://public/"),
        ("DOCS://public/intro", "docs://public/"),
        ("docs://public/a%20b", "docs://public/"),
        ("docs://public/intro?lang=en#top", "docs://public/"),
        ("file:///shared/a", "file:///shared/"),
        ("file://localhost/shared/a", "file:///shared/"),
        (
            "HTTPS://Docs.Example.COM:443/public/x",
            "https://docs.example.com/public/",
        ),
    ] {
        assert!(warden_allows_uri(raw, prefix), "{raw}");
    }
    for raw in [
        "/srv/public/handbook.md",
        "/srv/public/a/b.md",
        "/srv/public/",
    ] {
        assert!(warden_allows_path(raw, "/srv/public/"), "{raw}");
    }
}

/// The readers themselves: the issue's example really is read outside.
#[test]
fn the_readers_see_what_the_issue_describes() {
    let url = Url::parse("docs://internal/..%2fpublic%2fx/../roadmap").unwrap();
    assert_eq!(url.host_str(), Some("internal"));
    assert_eq!(url.path(), "/roadmap");
    let url = Url::parse("file://shared/a").unwrap();
    assert_eq!(url.host_str(), Some("shared"));
    assert!(uri_readers_agree("docs://public/..%2finternal", "docs", "public", &[]).is_err());
    assert!(path_readers_agree("/srv/public/\u{2025}/internal", &["srv", "public"]).is_err());
    assert!(path_readers_agree("/srv/public?backup/x", &["srv", "public"]).is_err());
    assert!(path_readers_agree("/srv/public//etc", &["srv", "public"]).is_err());
}
