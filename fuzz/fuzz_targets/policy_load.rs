//! The policy loader and compiler: arbitrary text as the filter's JSON
//! plugin configuration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use policy_sdk::{PolicyDocument, Warden};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(document) = PolicyDocument::from_json(text) else {
        return;
    };
    // The canonical form (hashed into the policy version) reads back as the
    // same document: equal documents get equal versions.
    if let Ok(canonical) = document.canonical_json() {
        match PolicyDocument::from_json(&canonical) {
            Ok(again) => assert_eq!(again.canonical_json().ok(), Some(canonical)),
            Err(e) => panic!("the canonical form does not read back: {e}\n{canonical}"),
        }
    }
    if let Ok(warden) = Warden::compile(&document) {
        let _ = (warden.version(), warden.rule_count());
    }
});
