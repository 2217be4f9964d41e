//! Strict JSON decoding shared by the JSON-RPC decoder, the token header
//! reader and the configuration loader.
//!
//! `serde_json::from_slice` keeps the *last* value of a duplicated key. An MCP
//! server built on another parser may keep the *first*, so a body such as
//! `{"params":{"name":"search","name":"delete_repo"}}` could be judged as one
//! tool and executed as another. Every object Warden reads therefore goes
//! through this decoder, which refuses duplicate keys at any depth and bounds
//! nesting explicitly (serde_json's own recursion guard stays as a backstop).

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Limits for one strict decode.
#[derive(Debug, Clone, Copy)]
pub struct JsonLimits {
    /// Largest accepted input, in bytes.
    pub max_bytes: usize,
    /// Deepest accepted nesting of arrays and objects (the top level is depth 1).
    pub max_depth: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        Self {
            max_bytes: 1024 * 1024,
            max_depth: 64,
        }
    }
}

/// Why strict decoding refused an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("document is {size} bytes, more than the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("{0}")]
    Syntax(String),
}

/// Decodes `bytes` as one JSON value, refusing duplicate object keys,
/// nesting deeper than the limit, invalid UTF-8, lone surrogates, numbers out
/// of range and trailing data.
pub fn parse_strict(bytes: &[u8], limits: JsonLimits) -> Result<Value, JsonError> {
    read_document(bytes, limits, StrictValue::document(limits))
}

/// Reads `bytes` as one whole document with `reader`: refused past the
/// size limit before any parsing, and with anything but whitespace after
/// the value. Every strict reader (the tree, the request envelope, the
/// response skim) frames its document here, so they refuse alike.
pub(crate) fn read_document<'de, R: DeserializeSeed<'de>>(
    bytes: &'de [u8],
    limits: JsonLimits,
    reader: R,
) -> Result<R::Value, JsonError> {
    if bytes.len() > limits.max_bytes {
        return Err(JsonError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let syntax = |e: serde_json::Error| JsonError::Syntax(e.to_string());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = reader.deserialize(&mut de).map_err(syntax)?;
    de.end().map_err(syntax)?;
    Ok(value)
}

/// Decodes a string with the same strictness (for configuration documents).
pub fn parse_strict_str(text: &str, limits: JsonLimits) -> Result<Value, JsonError> {
    parse_strict(text.as_bytes(), limits)
}

/// Reads one value into a `Value` tree, refusing what [`parse_strict`]
/// refuses. Readers that keep only part of a document
/// ([`crate::mcp::decode_body`]) use it for the parts they keep and
/// [`StrictIgnored`] for the rest, at the depth each part sits.
#[derive(Clone, Copy)]
pub(crate) struct StrictValue {
    depth: usize,
    max_depth: usize,
}

impl StrictValue {
    /// A reader of a whole document (its top level is depth 1).
    pub(crate) fn document(limits: JsonLimits) -> Self {
        Self {
            depth: 0,
            max_depth: limits.max_depth,
        }
    }

    /// The reader of an array's items or an object's members: one level
    /// deeper, refused past the limit with the message every strict reader
    /// gives.
    pub(crate) fn nested<E: serde::de::Error>(self) -> Result<Self, E> {
        let depth = self.depth + 1;
        if depth > self.max_depth {
            return Err(E::custom(format_args!(
                "nesting deeper than {} levels",
                self.max_depth
            )));
        }
        Ok(Self { depth, ..self })
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(duplicate_key(&key));
            }
            let value = map.next_value_seed(inner)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// The error every strict reader gives for a key an object already has.
pub(crate) fn duplicate_key<E: serde::de::Error>(key: &str) -> E {
    E::custom(format_args!("duplicate key `{key}`"))
}

/// Reads one value as strictly as [`StrictValue`] — strings decoded,
/// duplicate keys and depth checked, the same errors at the same places —
/// and keeps nothing.
#[derive(Clone, Copy)]
pub(crate) struct StrictIgnored(pub(crate) StrictValue);

impl<'de> DeserializeSeed<'de> for StrictIgnored {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictIgnored {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        self.0.visit_f64(v).map(drop)
    }

    fn visit_borrowed_str<E>(self, _: &'de str) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = Self(self.0.nested()?);
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = Self(self.0.nested()?);
        let mut keys = Keys::default();
        while let Some(key) = map.next_key_seed(Key)? {
            if let Err(key) = keys.insert(key) {
                return Err(duplicate_key(&key));
            }
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

/// The keys of one object seen so far: compared one by one while there
/// are few (most objects; no allocation), in a set past that.
#[derive(Default)]
pub(crate) struct Keys<'de> {
    few: [Option<Cow<'de, str>>; 8],
    many: BTreeSet<Cow<'de, str>>,
}

impl<'de> Keys<'de> {
    /// `Err(key)` when `key` was seen already.
    pub(crate) fn insert(&mut self, key: Cow<'de, str>) -> Result<(), Cow<'de, str>> {
        if !self.many.is_empty() {
            return if self.many.contains(&key) {
                Err(key)
            } else {
                self.many.insert(key);
                Ok(())
            };
        }
        if self.few.iter().flatten().any(|seen| *seen == key) {
            return Err(key);
        }
        if let Some(free) = self.few.iter_mut().find(|slot| slot.is_none()) {
            *free = Some(key);
            return Ok(());
        }
        self.many
            .extend(self.few.iter_mut().filter_map(Option::take));
        self.many.insert(key);
        Ok(())
    }
}

/// An object key, borrowed from the body unless it held escapes.
pub(crate) struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Every file of JSONTestSuite's `test_parsing` (a copy in `tests/data`),
/// for the tests that hold Warden's strict readers to one another.
#[cfg(test)]
pub(crate) fn json_test_suite() -> Vec<Vec<u8>> {
    let suite = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/JSONTestSuite/test_parsing");
    let files: Vec<Vec<u8>> = std::fs::read_dir(&suite)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read(entry.path()).ok())
        .collect();
    // A missing or unreadable copy must fail the tests, not pass them empty.
    assert!(
        files.len() > 300,
        "{} files in {}",
        files.len(),
        suite.display()
    );
    files
}

/// `value` placed between `before` and `after`, byte for byte (test files
/// that are not UTF-8 included).
#[cfg(test)]
pub(crate) fn spliced(before: &str, value: &[u8], after: &str) -> Vec<u8> {
    [before.as_bytes(), value, after.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Value, JsonError> {
        parse_strict(s.as_bytes(), JsonLimits::default())
    }

    #[test]
    fn accepts_plain_documents() {
        let v = parse(r#"{"a":[1,2,{"b":null}],"c":"d"}"#).unwrap();
        assert_eq!(v["a"][2]["b"], Value::Null);
    }

    /// Numbers are read correctly rounded, as Python, Node and the MCP
    /// SDKs read them (and `str::parse`): just below a halfway point, and
    /// 20,000 decimals of 17 to 26 digits, of which serde_json's default
    /// best-effort parsing put about a quarter a double or two away.
    #[test]
    fn numbers_are_read_correctly_rounded() {
        let mut spellings: Vec<String> = [
            "0.500000000000000055511151231257827021181583404541005625",
            "2.0000000000000002220446049250313080847263336181640525",
            "5.0000000000000004440892098500627",
            "8.016572430128848194531760e5",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let mut state: u64 = 0x1234_5678_9abc_def1;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let digits: String = (0..17 + state % 10)
                .map(|i| char::from(b'0' + u8::try_from((state >> (i % 60)) % 10).unwrap()))
                .collect();
            spellings.push(format!(
                "{}.{}e{}",
                &digits[..1],
                &digits[1..],
                (state >> 40) % 40
            ));
        }
        for text in spellings {
            let want: f64 = text.parse().unwrap();
            assert_eq!(parse(&text).unwrap().as_f64(), Some(want), "{text}");
        }
    }

    #[test]
    fn rejects_duplicate_keys_at_any_depth() {
        let top = parse(r#"{"a":1,"a":2}"#).unwrap_err();
        assert!(top.to_string().contains("duplicate key `a`"), "{top}");
        let deep = parse(r#"{"x":[{"y":{"n":"s","n":"t"}}]}"#).unwrap_err();
        assert!(deep.to_string().contains("duplicate key `n`"), "{deep}");
        // Escaped spellings of the same key are the same key.
        assert!(parse(r#"{"name":1,"n\u0061me":2}"#).is_err());
    }

    #[test]
    fn bounds_depth() {
        let limits = JsonLimits {
            max_bytes: 1 << 20,
            max_depth: 3,
        };
        assert!(parse_strict(b"[[[1]]]", limits).is_ok());
        let err = parse_strict(b"[[[[1]]]]", limits).unwrap_err();
        assert!(err.to_string().contains("nesting deeper than 3"), "{err}");
    }

    #[test]
    fn bounds_size() {
        let limits = JsonLimits {
            max_bytes: 4,
            max_depth: 8,
        };
        assert_eq!(
            parse_strict(b"[1,2,3]", limits),
            Err(JsonError::TooLarge { size: 7, limit: 4 })
        );
    }

    #[test]
    fn rejects_trailing_data_bad_utf8_and_lone_surrogates() {
        assert!(parse("{} {}").is_err());
        assert!(parse_strict(b"\"\xff\"", JsonLimits::default()).is_err());
        assert!(parse(r#""\ud800""#).is_err());
        assert!(parse("1e400").is_err());
    }
}
