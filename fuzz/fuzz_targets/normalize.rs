//! Path and URI normalisation. Input: `text` or `text\nprefix`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use policy_sdk::normalize::{normalize_path, normalize_uri, within_path_prefix, within_prefix};

/// What any accepted form holds: it is its own canonical form, and nothing
/// in it can be read two ways.
fn check_form(
    form: &str,
    normalize: fn(&str) -> Result<String, policy_sdk::normalize::NormalizeError>,
) {
    assert_eq!(normalize(form).as_deref(), Ok(form), "not idempotent");
    assert!(form.is_ascii() && !form.chars().any(|c| c.is_control() || c == '\\'));
    let path = form.split(['?', '#']).next().unwrap_or_default();
    assert!(
        !path
            .split('/')
            .any(|segment| segment == "." || segment == ".."),
        "dot segment in {form:?}"
    );
    assert!(within_prefix(form, form));
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (text, prefix) = text.split_once('\n').unwrap_or((text, ""));
    let path = normalize_path(text);
    if let Ok(path) = &path {
        check_form(path, normalize_path);
        assert!(!path.contains(['?', '#']), "query or fragment in a path");
        assert!(within_path_prefix(path, path));
    }
    let uri = normalize_uri(text);
    if let Ok(uri) = &uri {
        check_form(uri, normalize_uri);
    }
    if prefix.is_empty() {
        return;
    }
    // A canonical text below a canonical prefix starts with it, and what is
    // below a path prefix is below it as a URI prefix too.
    if let Ok(canonical_prefix) = normalize_uri(prefix) {
        for candidate in [path.as_ref().ok(), uri.as_ref().ok()]
            .into_iter()
            .flatten()
        {
            let trimmed = canonical_prefix.trim_end_matches('/');
            if within_prefix(candidate, &canonical_prefix) {
                assert!(
                    candidate.starts_with(trimmed),
                    "{candidate:?} below {canonical_prefix:?}"
                );
            }
            if within_path_prefix(candidate, &canonical_prefix) {
                assert!(within_prefix(candidate, &canonical_prefix));
            }
        }
    }
});
