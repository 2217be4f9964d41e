//! One strict pass over a request body that keeps only what the decoder
//! judges.
//!
//! [`decode_body`](super::decode_body) needs the envelope's members, the
//! target's parameter, the tool's arguments and one `_meta` entry. Building
//! the whole body into a `Value` tree first (every key a `String`, every
//! object a map, the arguments then copied out of it) was most of what
//! judging a request cost. This reader goes over the same bytes with the
//! same parser and refuses what [`parse_strict`](crate::json::parse_strict)
//! refuses, with the same errors at the same places — duplicate keys at any
//! depth, nesting past the limit, invalid UTF-8, lone surrogates, numbers
//! out of range, trailing data — but builds only the values it keeps
//! ([`StrictValue`]) and reads the rest without keeping it
//! ([`StrictIgnored`]).
//!
//! [`Envelope::from_tree`] gives the same answer from a parsed tree, the way
//! the decoder read bodies before; the tests (and the `mcp_decode` fuzz
//! target) hold the two to the same result on every input.
//!
//! Measured (callgrind, native, the gate benchmark's `tools/call`): the
//! decode took about 15,200 instructions with the tree, 9,200 this way
//! (the arguments are still built into a tree: the policy reads them).

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::PROTOCOL_VERSION_META_KEY;
use crate::json::{
    JsonError, JsonLimits, Key, Keys, StrictIgnored, StrictValue, duplicate_key, read_document,
};

/// What a JSON value turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Shape {
    Object,
    Array,
    /// A string, number, `true`, `false` or `null`.
    #[default]
    Other,
}

/// The members of a message the decoder looks at.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Envelope {
    /// What the body was; the members below are read only from an object.
    pub(super) shape: Shape,
    pub(super) jsonrpc: Option<Value>,
    pub(super) id: Option<Value>,
    pub(super) method: Option<Value>,
    /// What `params` was, when present; its members are read only from an
    /// object.
    pub(super) params: Option<Shape>,
    pub(super) params_members: Params,
    pub(super) has_result: bool,
    pub(super) has_error: bool,
    /// Of the members JSON-RPC does not define, the one that sorts first:
    /// the error names the same member whatever order they came in.
    pub(super) unknown: Option<String>,
}

/// The members of `params` a target is judged by.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Params {
    pub(super) name: Option<Value>,
    pub(super) uri: Option<Value>,
    pub(super) arguments: Option<Value>,
    /// `_meta["io.modelcontextprotocol/protocolVersion"]`, when `_meta` is
    /// an object that has it.
    pub(super) meta_protocol_version: Option<Value>,
}

/// Reads `body` as one strict JSON value, keeping its envelope.
pub(super) fn read(body: &[u8], limits: JsonLimits) -> Result<Envelope, JsonError> {
    let mut envelope = Envelope::default();
    let reader = ObjectReader {
        reader: StrictValue::document(limits),
        kept: KeptMembers::Envelope(&mut envelope),
    };
    envelope.shape = read_document(body, limits, reader)?;
    Ok(envelope)
}

/// Where the members an [`ObjectReader`] keeps go. One reader type for
/// the three objects, not one per object: each type would compile its own
/// copy of the JSON parser into the module.
enum KeptMembers<'a> {
    Envelope(&'a mut Envelope),
    Params(&'a mut Params),
    /// `_meta`: only the protocol version is kept.
    Meta(&'a mut Option<Value>),
}

/// Reads one value strictly: an object's members into `kept`, anything
/// else checked and dropped.
struct ObjectReader<'a> {
    reader: StrictValue,
    kept: KeptMembers<'a>,
}

impl ObjectReader<'_> {
    fn ignored(&self) -> StrictIgnored {
        StrictIgnored(self.reader)
    }
}

impl KeptMembers<'_> {
    /// Reads the value of `key` with `reader` (the depth the value sits
    /// at), keeping it or not.
    fn member<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        reader: StrictValue,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match self {
            KeptMembers::Envelope(envelope) => match key {
                "jsonrpc" => envelope.jsonrpc = Some(map.next_value_seed(reader)?),
                "id" => envelope.id = Some(map.next_value_seed(reader)?),
                "method" => envelope.method = Some(map.next_value_seed(reader)?),
                "params" => {
                    let kept = KeptMembers::Params(&mut envelope.params_members);
                    envelope.params = Some(map.next_value_seed(ObjectReader { reader, kept })?);
                }
                "result" => {
                    map.next_value_seed(StrictIgnored(reader))?;
                    envelope.has_result = true;
                }
                "error" => {
                    map.next_value_seed(StrictIgnored(reader))?;
                    envelope.has_error = true;
                }
                unknown => {
                    if envelope
                        .unknown
                        .as_deref()
                        .is_none_or(|first| unknown < first)
                    {
                        envelope.unknown = Some(unknown.to_owned());
                    }
                    map.next_value_seed(StrictIgnored(reader))?;
                }
            },
            KeptMembers::Params(params) => match key {
                "name" => params.name = Some(map.next_value_seed(reader)?),
                "uri" => params.uri = Some(map.next_value_seed(reader)?),
                "arguments" => params.arguments = Some(map.next_value_seed(reader)?),
                "_meta" => {
                    let kept = KeptMembers::Meta(&mut params.meta_protocol_version);
                    map.next_value_seed(ObjectReader { reader, kept })?;
                }
                _ => map.next_value_seed(StrictIgnored(reader))?,
            },
            KeptMembers::Meta(protocol_version) if key == PROTOCOL_VERSION_META_KEY => {
                **protocol_version = Some(map.next_value_seed(reader)?);
            }
            KeptMembers::Meta(_) => map.next_value_seed(StrictIgnored(reader))?,
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for ObjectReader<'_> {
    type Value = Shape;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Shape, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ObjectReader<'_> {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Shape, E> {
        self.ignored().visit_f64(v).map(|()| Shape::Other)
    }

    fn visit_borrowed_str<E>(self, _: &'de str) -> Result<Shape, E> {
        Ok(Shape::Other)
    }

    fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
        Ok(Shape::Other)
    }

    fn visit_unit<E>(self) -> Result<Shape, E> {
        Ok(Shape::Other)
    }

    fn visit_none<E>(self) -> Result<Shape, E> {
        Ok(Shape::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Shape, A::Error> {
        self.ignored().visit_seq(seq).map(|()| Shape::Array)
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Shape, A::Error> {
        let inner = self.reader.nested()?;
        let mut keys = Keys::default();
        while let Some(key) = map.next_key_seed(Key)? {
            // Refused before its value is read, as the tree reader does.
            if let Err(key) = keys.insert(key.clone()) {
                return Err(duplicate_key(&key));
            }
            self.kept.member(&key, inner, &mut map)?;
        }
        Ok(Shape::Object)
    }
}

impl Envelope {
    /// The same reading of a tree [`parse_strict`](crate::json::parse_strict)
    /// built: how the decoder read bodies before, kept to check this
    /// reader against.
    #[cfg(any(test, feature = "testing"))]
    pub(super) fn from_tree(value: Value) -> Self {
        fn shape(value: &Value) -> Shape {
            match value {
                Value::Object(_) => Shape::Object,
                Value::Array(_) => Shape::Array,
                _ => Shape::Other,
            }
        }
        let mut envelope = Envelope {
            shape: shape(&value),
            ..Envelope::default()
        };
        let Value::Object(object) = value else {
            return envelope;
        };
        let defined = ["jsonrpc", "method", "params", "id", "result", "error"];
        envelope.unknown = object
            .keys()
            .find(|k| !defined.contains(&k.as_str()))
            .cloned();
        envelope.has_result = object.contains_key("result");
        envelope.has_error = object.contains_key("error");
        for (key, value) in object {
            match key.as_str() {
                "jsonrpc" => envelope.jsonrpc = Some(value),
                "id" => envelope.id = Some(value),
                "method" => envelope.method = Some(value),
                "params" => {
                    envelope.params = Some(shape(&value));
                    if let Value::Object(params) = value {
                        envelope.params_members = Params {
                            name: params.get("name").cloned(),
                            uri: params.get("uri").cloned(),
                            arguments: params.get("arguments").cloned(),
                            meta_protocol_version: params
                                .get("_meta")
                                .and_then(|meta| meta.get(PROTOCOL_VERSION_META_KEY))
                                .cloned(),
                        };
                    }
                }
                _ => {}
            }
        }
        envelope
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{json_test_suite, parse_strict, spliced};
    use crate::mcp::{
        Decoding, ProtocolRevision, ToolNameFormat, decode_body, decode_body_via_tree,
    };

    const LIMITS: JsonLimits = JsonLimits {
        max_bytes: 1 << 20,
        max_depth: 64,
    };

    /// The one-pass reader and the tree reader give the same answer —
    /// the same envelope, or the same error — and so does the decoder
    /// under every revision and both tool-name formats.
    fn agree(body: &[u8], limits: JsonLimits) {
        let shown = String::from_utf8_lossy(body);
        let via_tree = parse_strict(body, limits).map(Envelope::from_tree);
        assert_eq!(read(body, limits), via_tree, "{shown}");
        for revision in ProtocolRevision::ALL
            .iter()
            .copied()
            .map(Some)
            .chain([None])
        {
            for tool_names in [ToolNameFormat::Spec, ToolNameFormat::PrintableAscii] {
                let decoding = Decoding {
                    limits,
                    revision,
                    tool_names,
                };
                assert_eq!(
                    decode_body(body, decoding),
                    decode_body_via_tree(body, decoding),
                    "{shown}"
                );
            }
        }
    }

    /// `value` in each place the reader keeps or steps over.
    fn placed(value: &str) -> Vec<String> {
        [
            "{value}",
            r#"{"jsonrpc":"2.0","id":{value},"method":"ping"}"#,
            r#"{"jsonrpc":{value},"id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":{value}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{value}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":{value}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":{value}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{value}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","_meta":{value}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":{value}}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"progressToken":{value}}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","cursor":{value}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{value}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{value}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","extra":{value}}"#,
            r#"[{value}]"#,
        ]
        .iter()
        .map(|shape| shape.replace("{value}", value))
        .collect()
    }

    /// Every file of JSONTestSuite in every place: valid values are kept
    /// or stepped over alike, and each refusal is the same error.
    #[test]
    fn the_one_pass_reader_agrees_with_the_tree_on_json_test_suite() {
        for bytes in json_test_suite() {
            agree(&bytes, LIMITS);
            for shape in placed("\u{1}") {
                let (before, after) = shape.split_once('\u{1}').unwrap();
                agree(&spliced(before, &bytes, after), LIMITS);
            }
        }
    }

    #[test]
    fn duplicates_escapes_and_many_keys_are_read_alike_everywhere() {
        let values = [
            r#"{"a":1,"a":2}"#,
            r#"{"name":1,"n\u0061me":2}"#,
            r#"{"x":[{"y":{"n":"s","n":"t"}}]}"#,
            r#"{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k3":10}"#,
            r#"{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k9":10}"#,
            r#"{"io.modelcontextprotocol/protocolVersion":"a","io.modelcontextprotocol/protocolVersion":"b"}"#,
            r#""\ud800""#,
            "1e400",
            "-0.0",
            "7.0",
            "18446744073709551616",
            "null",
            r#""""#,
            r#""deploy""#,
            r#""file:///etc/\u0000""#,
        ];
        for value in values {
            for body in placed(value) {
                agree(body.as_bytes(), LIMITS);
            }
        }
        let members = [
            r#""jsonrpc":"2.0""#,
            r#""jsonrpc":"2.0""#,
            r#""id":1"#,
            r#""id":1"#,
            r#""method":"ping""#,
            r#""method":"ping""#,
            r#""params":{}"#,
            r#""params":{}"#,
            r#""result":{}"#,
            r#""error":{}"#,
            r#""zeta":1"#,
            r#""alpha":1"#,
            r#""\u006dethod":"ping""#,
        ];
        // Every pair of members, in both orders: duplicates of each kind,
        // unknown members in either order, escaped spellings.
        for first in members {
            for second in members {
                for third in [r#""jsonrpc":"2.0""#, r#""beta":0"#] {
                    agree(format!("{{{first},{second},{third}}}").as_bytes(), LIMITS);
                }
            }
        }
    }

    #[test]
    fn depth_is_bounded_at_the_same_place_in_every_part() {
        for max_depth in 0..7 {
            let limits = JsonLimits {
                max_bytes: 1 << 20,
                max_depth,
            };
            for value in ["[[[1]]]", r#"{"a":{"b":{}}}"#, "1"] {
                for body in placed(value) {
                    agree(body.as_bytes(), limits);
                }
            }
        }
    }

    #[test]
    fn size_trailing_data_and_the_kept_values() {
        let small = JsonLimits {
            max_bytes: 8,
            max_depth: 64,
        };
        agree(br#"{"jsonrpc":"2.0"}"#, small);
        agree(br#"{"jsonrpc":"2.0","id":1,"method":"ping"} {}"#, LIMITS);
        agree(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}x"#, LIMITS);
        let body = br#"{"params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","progressToken":3},"arguments":{"a":[1,{"b":null}]},"uri":"u","name":"n","x":1},"method":"tools/call","id":"s","jsonrpc":"2.0","result":0}"#;
        agree(body, LIMITS);
        let envelope = read(body, LIMITS).unwrap();
        assert_eq!(envelope.params, Some(Shape::Object));
        let params = envelope.params_members;
        assert_eq!(
            params.meta_protocol_version,
            Some(Value::from("2026-07-28"))
        );
        assert_eq!(
            params.arguments,
            Some(serde_json::json!({"a": [1, {"b": null}]}))
        );
        assert_eq!(params.name, Some(Value::from("n")));
        assert!(envelope.has_result && !envelope.has_error);
    }
}
