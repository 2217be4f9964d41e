//! The JSON-RPC body decoder (`mcp::decode_body`) and everything
//! `Warden::judge_body` does with a body: decode, then decide for each
//! caller under the example policy. The decoder reads bodies in one pass;
//! it must give what reading the whole tree first gives, on every input.
#![no_main]

use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use policy_sdk::RequestHead;
use policy_sdk::json::{JsonLimits, parse_strict};
use policy_sdk::mcp::{
    Decoding, ProtocolRevision, ToolNameFormat, decode_body, decode_body_via_tree,
};
use warden_fuzz::{CALLERS, warden};

const LIMITS: JsonLimits = JsonLimits {
    max_bytes: 64 * 1024,
    max_depth: 16,
};

fuzz_target!(|data: &[u8]| {
    // Every revision's table and both tool-name formats, picked by length.
    let decoding = Decoding {
        limits: LIMITS,
        revision: ProtocolRevision::ALL.get(data.len() % 6).copied(),
        tool_names: if data.len() % 2 == 0 {
            ToolNameFormat::Spec
        } else {
            ToolNameFormat::PrintableAscii
        },
    };
    let decoded = decode_body(data, decoding);
    assert_eq!(
        decoded,
        decode_body_via_tree(data, decoding),
        "the one-pass and the tree readings differ"
    );
    match decoded {
        Ok(request) => {
            let _ = (
                request.tool_name(),
                request.resource_uri(),
                request.prompt_name(),
            );
            let _ = (request.arguments(), request.mirrored_name());
            // What the strict reader accepts, a lenient one reads the same:
            // no duplicate key, nothing a second parser could take apart
            // differently.
            let strict = parse_strict(data, LIMITS);
            let lenient = serde_json::from_slice::<serde_json::Value>(data);
            assert_eq!(
                strict.ok(),
                lenient.ok(),
                "strict and lenient readings differ"
            );
            for caller in CALLERS.iter() {
                let _ = warden().policy().decide(caller, &request);
            }
        }
        Err(error) => {
            let _ = (error.code(), error.id(), error.to_string());
        }
    }
    for protocol_version in ["2025-06-18", "2026-07-28"] {
        let head = RequestHead {
            method: "POST",
            path: "/mcp",
            content_type: Some("application/json"),
            protocol_version: Some(protocol_version),
            now_unix_nanos: 1_800_000_000_000_000_000,
            ..RequestHead::default()
        };
        for caller in CALLERS.iter() {
            // The gate takes the identity shared, as the cache hands it out.
            let _ = warden().judge_body(&Rc::new(caller.clone()), data, &head);
        }
    }
});
