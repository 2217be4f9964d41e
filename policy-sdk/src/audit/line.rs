//! The audit record written as its JSON line by hand, byte for byte what
//! `serde_json` makes of the derived `Serialize` (which stays the reference:
//! the tests compare the two on records of every shape).
//!
//! Every request writes one line, and serde's path was about an eighth of a
//! cached-token decision: each of some thirty keys went through the string
//! escaper at run time, every field through the serializer's trait calls,
//! and the buffer grew three times from 128 bytes. Here the keys are
//! literals, values are escaped in runs between the bytes that need it, and
//! the buffer is sized once from the record.

use serde_json::Value;

use super::AuditRecord;
use crate::policy::Shadow;

/// A line under construction.
struct Line(String);

impl Line {
    /// `,"key":` (or `"key":` first) is part of the literal the caller
    /// passes: keys never need escaping.
    fn key(&mut self, key: &str) {
        self.0.push_str(key);
    }

    /// A JSON string, escaped as `serde_json` escapes: `"` and `\`, the
    /// control characters as `\b \t \n \f \r` or `\u00xx` (lower-case hex);
    /// nothing else (not `/`, not DEL, not non-ASCII).
    fn string(&mut self, value: &str) {
        self.0.push('"');
        let mut run = 0;
        while let Some(at) = value
            .as_bytes()
            .get(run..)
            .and_then(next_escaped)
            .map(|offset| run + offset)
        {
            let byte = value.as_bytes().get(at).copied().unwrap_or_default();
            // `at` is an ASCII byte's position: a character boundary.
            self.0.push_str(value.get(run..at).unwrap_or_default());
            match byte {
                b'"' => self.0.push_str("\\\""),
                b'\\' => self.0.push_str("\\\\"),
                0x08 => self.0.push_str("\\b"),
                0x09 => self.0.push_str("\\t"),
                0x0a => self.0.push_str("\\n"),
                0x0c => self.0.push_str("\\f"),
                0x0d => self.0.push_str("\\r"),
                _ => {
                    self.0.push_str("\\u00");
                    self.0.push(hex_digit(byte >> 4));
                    self.0.push(hex_digit(byte & 0xf));
                }
            }
            run = at + 1;
        }
        self.0.push_str(value.get(run..).unwrap_or_default());
        self.0.push('"');
    }

    fn optional_string(&mut self, value: Option<&str>) {
        match value {
            Some(value) => self.string(value),
            None => self.0.push_str("null"),
        }
    }

    /// `key` and a string.
    fn string_member(&mut self, key: &str, value: &str) {
        self.key(key);
        self.string(value);
    }

    /// `key` and a string, or `null`.
    fn nullable_member(&mut self, key: &str, value: Option<&str>) {
        self.key(key);
        self.optional_string(value);
    }

    /// `key` and a string, or nothing at all (`skip_serializing_if`).
    fn skipped_unless(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.string_member(key, value);
        }
    }

    /// `key` and a value, or nothing at all (`skip_serializing_if`).
    fn value_skipped_unless(&mut self, key: &str, value: Option<&Value>) {
        if let Some(value) = value {
            self.key(key);
            self.value(value);
        }
    }

    fn number(&mut self, value: u64) {
        super::push_number(&mut self.0, value);
    }

    /// A JSON value: the common request ids by hand, anything else through
    /// `serde_json` (the tool arguments and list summaries, when present).
    fn value(&mut self, value: &Value) {
        match value {
            Value::Null => self.0.push_str("null"),
            Value::String(text) => self.string(text),
            Value::Number(number) => match number.as_u64() {
                Some(number) => self.number(number),
                None => self.through_serde(value),
            },
            other => self.through_serde(other),
        }
    }

    fn through_serde(&mut self, value: &Value) {
        match serde_json::to_string(value) {
            Ok(text) => self.0.push_str(&text),
            // A `Value` always serializes; were it not so, the line stays
            // valid JSON.
            Err(_) => self.0.push_str("null"),
        }
    }

    fn optional_value(&mut self, value: Option<&Value>) {
        match value {
            Some(value) => self.value(value),
            None => self.0.push_str("null"),
        }
    }

    fn shadow(&mut self, shadow: &Shadow) {
        self.string_member("{\"outcome\":", shadow.outcome);
        self.nullable_member(",\"rule\":", shadow.rule.as_deref());
        self.string_member(",\"reason\":", &shadow.reason);
        self.0.push('}');
    }
}

/// Whether JSON needs `byte` escaped: `"`, `\` and the control characters.
fn is_escaped(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// Where the first byte to escape is in `bytes`.
///
/// Audit values are almost always plain text, so the scan goes eight bytes
/// at a time and looks at single bytes only in the word that holds one: in
/// Wasm a byte-at-a-time loop was the larger part of writing a line.
fn next_escaped(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH_BITS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Nonzero exactly when some byte of `word` is below `bound` (at most
    // 0x80): the borrow of that byte's subtraction sets its high bit, and
    // `!word` keeps only bytes that had it clear. A borrow running on from
    // such a byte may flag the lane above it too, but only in a word that
    // holds one: a clean word never flags, and the exact byte scan below
    // finds the place.
    let has_byte_below = |word: u64, bound: u8| {
        word.wrapping_sub(ONES.wrapping_mul(u64::from(bound))) & !word & HIGH_BITS != 0
    };
    let has_byte =
        |word: u64, byte: u8| has_byte_below(word ^ ONES.wrapping_mul(u64::from(byte)), 1);
    let mut clean = 0;
    for chunk in bytes.chunks_exact(8) {
        let Ok(lanes) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let word = u64::from_ne_bytes(lanes);
        if has_byte_below(word, 0x20) || has_byte(word, b'"') || has_byte(word, b'\\') {
            break;
        }
        clean += 8;
    }
    let rest = bytes.get(clean..)?;
    rest.iter()
        .position(|&byte| is_escaped(byte))
        .map(|at| clean + at)
}

fn hex_digit(nibble: u8) -> char {
    char::from(
        b"0123456789abcdef"
            .get(usize::from(nibble))
            .copied()
            .unwrap_or(b'0'),
    )
}

/// What the strings of a record add to its line, before escaping; the keys
/// and punctuation of a full record are under 512 bytes.
fn estimated_len(record: &AuditRecord) -> usize {
    let optional = [
        record.request_id.as_deref(),
        record.client_request_id.as_deref(),
        record.trace_id.as_deref(),
        record.span_id.as_deref(),
        record.rule.as_deref(),
        record.owner.as_deref(),
        record.subject.as_deref(),
        record.actor.as_deref(),
        record.client_id.as_deref(),
        record.issuer.as_deref(),
        record.method.as_deref(),
        record.tool.as_deref(),
        record.resource.as_deref(),
        record.prompt.as_deref(),
        record.protocol_version.as_deref(),
        record.deny_mode_rule.as_deref(),
    ];
    let links = record.chain_links().iter().map(|link| link.len() + 3);
    512 + record.time.as_str().len()
        + record.reason.len()
        + record.http_method.len()
        + record.policy.len()
        + optional.into_iter().flatten().map(str::len).sum::<usize>()
        + links.sum::<usize>()
}

/// The record's JSON line: the fields in declaration order, those marked
/// `skip_serializing_if` left out when empty, as the derive writes them.
pub(super) fn write(record: &AuditRecord) -> String {
    let mut line = Line(String::with_capacity(estimated_len(record)));
    line.string_member("{\"audit\":", record.audit);
    line.string_member(",\"time\":", record.time.as_str());
    line.nullable_member(",\"request_id\":", record.request_id.as_deref());
    line.skipped_unless(
        ",\"client_request_id\":",
        record.client_request_id.as_deref(),
    );
    line.skipped_unless(",\"trace_id\":", record.trace_id.as_deref());
    line.skipped_unless(",\"span_id\":", record.span_id.as_deref());
    line.string_member(",\"decision\":", record.decision);
    line.skipped_unless(",\"token_failure\":", record.token_failure);
    line.key(",\"status\":");
    match record.status {
        Some(status) => line.number(u64::from(status)),
        None => line.0.push_str("null"),
    }
    line.nullable_member(",\"rule\":", record.rule.as_deref());
    line.nullable_member(",\"owner\":", record.owner.as_deref());
    line.string_member(",\"reason\":", &record.reason);
    line.nullable_member(",\"actor_type\":", record.actor_type);
    line.nullable_member(",\"subject\":", record.subject.as_deref());
    line.nullable_member(",\"subject_type\":", record.subject_type);
    line.nullable_member(",\"actor\":", record.actor.as_deref());
    line.key(",\"chain\":[");
    for (at, link) in record.chain_links().iter().enumerate() {
        if at > 0 {
            line.0.push(',');
        }
        line.string(link);
    }
    line.nullable_member("],\"client_id\":", record.client_id.as_deref());
    line.nullable_member(",\"issuer\":", record.issuer.as_deref());
    line.string_member(",\"http_method\":", &record.http_method);
    line.nullable_member(",\"method\":", record.method.as_deref());
    line.nullable_member(",\"tool\":", record.tool.as_deref());
    line.nullable_member(",\"resource\":", record.resource.as_deref());
    line.nullable_member(",\"prompt\":", record.prompt.as_deref());
    line.key(",\"jsonrpc_id\":");
    line.optional_value(record.jsonrpc_id.as_ref());
    line.value_skipped_unless(",\"arguments\":", record.arguments.as_ref());
    line.skipped_unless(",\"protocol_version\":", record.protocol_version.as_deref());
    line.skipped_unless(",\"deny_mode\":", record.deny_mode);
    line.skipped_unless(",\"deny_mode_rule\":", record.deny_mode_rule.as_deref());
    line.value_skipped_unless(",\"list\":", record.list.as_ref());
    if let Some(shadow) = &record.shadow {
        line.key(",\"shadow\":");
        line.shadow(shadow);
    }
    line.string_member(",\"policy\":", &record.policy);
    line.0.push('}');
    line.0
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    /// Strings that test the escaper: every control character, quotes and
    /// backslashes at the edges, DEL, `/`, and multi-byte characters next
    /// to escapes.
    fn awkward() -> Vec<String> {
        let controls: String = (0u8..0x20).map(char::from).collect();
        vec![
            String::new(),
            "plain".into(),
            controls,
            "\"quoted\"".into(),
            "\\".into(),
            "a\\\"b\"\\".into(),
            "\u{7f}/</script>".into(),
            "é\n☃\t😀\u{1}ß".into(),
            "\u{2028}\u{2029}\u{feff}".into(),
            "x".repeat(700),
        ]
    }

    fn ids() -> Vec<Option<Value>> {
        vec![
            None,
            Some(Value::Null),
            Some(json!(0)),
            Some(json!(7)),
            Some(json!(u64::MAX)),
            Some(json!(-1)),
            Some(json!(i64::MIN)),
            Some(json!(1.5)),
            Some(json!(1e300)),
            Some(json!("id-\"7\"\n")),
            Some(json!({"odd": [1, "two", null, {"k": "\u{1}"}]})),
        ]
    }

    fn assert_same(record: &AuditRecord) {
        let reference = serde_json::to_string(record).unwrap();
        assert_eq!(write(record), reference);
        assert_eq!(record.to_json_line(), reference);
    }

    fn base() -> AuditRecord {
        AuditRecord::new(
            1_796_285_742_917_654_321,
            "POST",
            Some("w-1"),
            &Arc::from("sha256:abc"),
        )
    }

    #[test]
    fn a_bare_record_is_written_as_serde_writes_it() {
        assert_same(&base());
        let mut none = base();
        none.request_id = None;
        assert_same(&none);
    }

    #[test]
    fn every_field_set_is_written_as_serde_writes_it() {
        for (at, text) in awkward().into_iter().enumerate() {
            let mut record = base();
            record.request_id = Some(text.clone());
            record.client_request_id = Some(text.clone());
            record.trace_id = Some(text.clone());
            record.span_id = Some(text.clone());
            record.decision = "allow";
            record.token_failure = Some("signature");
            record.status = Some([0, 200, 401, 65_535][at % 4]);
            record.rule = Some(text.as_str().into());
            record.owner = Some(text.as_str().into());
            record.reason = text.as_str().into();
            record.actor_type = Some("agent");
            record.subject = Some(text.as_str().into());
            record.subject_type = Some("human");
            record.actor = Some(text.as_str().into());
            // No identity, an empty chain, one link, two links.
            record.chain = match at % 4 {
                0 => None,
                links => Some(vec![Arc::from(text.as_str()); links - 1].into()),
            };
            record.client_id = Some(text.as_str().into());
            record.issuer = Some(text.as_str().into());
            record.http_method = text.clone().into();
            record.method = Some(text.clone());
            record.tool = Some(text.clone());
            record.resource = Some(text.clone());
            record.prompt = Some(text.clone());
            record.jsonrpc_id = Some(json!(text.clone()));
            record.arguments = Some(json!({"note": text.clone(), "n": [1, 2.5, -3]}));
            record.protocol_version = Some(text.clone());
            record.deny_mode = Some("disguise");
            record.deny_mode_rule = Some(text.as_str().into());
            record.list = Some(json!({"removed": [text.clone()]}));
            record.shadow = Some(Shadow {
                outcome: "would_deny",
                rule: (at % 2 == 0).then(|| text.as_str().into()),
                reason: text.as_str().into(),
            });
            record.policy = text.as_str().into();
            assert_same(&record);
        }
    }

    #[test]
    fn every_request_id_shape_is_written_as_serde_writes_it() {
        for id in ids() {
            let mut record = base();
            record.jsonrpc_id = id.clone();
            record.arguments = id.clone();
            record.list = id;
            assert_same(&record);
        }
    }

    /// The word-at-a-time scan against a byte at a time: every byte value
    /// at every place of short buffers, among plain letters and among
    /// bytes with the high bit set (UTF-8 beyond ASCII, where the word
    /// trick could go wrong), and several escapes in one word.
    #[test]
    fn the_escape_scan_finds_what_a_byte_scan_finds() {
        let byte_scan = |bytes: &[u8]| bytes.iter().position(|&byte| is_escaped(byte));
        for filler in [b'a', 0x80, 0xff, 0x21, 0x5d] {
            for len in 0..20 {
                for place in 0..len {
                    for byte in 0..=u8::MAX {
                        let mut bytes = vec![filler; len];
                        bytes[place] = byte;
                        assert_eq!(next_escaped(&bytes), byte_scan(&bytes), "{bytes:?}");
                        if place + 1 < len {
                            bytes[place + 1] = b'"';
                            assert_eq!(next_escaped(&bytes), byte_scan(&bytes), "{bytes:?}");
                        }
                    }
                }
            }
        }
        assert!(is_escaped(0x1f));
        assert!(!is_escaped(0x20));
        assert!(!is_escaped(0x7f));
    }

    #[test]
    fn the_line_is_sized_once_for_a_usual_record() {
        let mut record = base();
        record.subject = Some("alice".into());
        record.chain = Some(vec!["alice".into(), "research-agent".into()].into());
        record.reason = "allowed by rule `humans-deploy`".into();
        let line = write(&record);
        assert!(line.len() <= estimated_len(&record), "{}", line.len());
    }
}
