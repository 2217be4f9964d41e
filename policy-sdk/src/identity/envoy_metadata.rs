//! The token payload Envoy's `jwt_authn` filter verified, read back from the
//! stream's dynamic metadata.
//!
//! Envoy hands the metadata to a Wasm filter as one serialized
//! `envoy.config.core.v3.Metadata` message (the property `metadata`; a path
//! into a `Struct` below it fails to serialize, and leaf values lose their
//! types). `jwt_authn` writes the verified payload under its namespace as a
//! `google.protobuf.Struct` (`payload_in_metadata`). This module decodes
//! exactly that much of the protobuf wire format, and nothing it does not
//! expect: a second copy of a key, two kinds in one value, an unknown field
//! inside the payload or a value nested too deep are refused rather than
//! read one way here and another way elsewhere.
//!
//! Numbers arrive as doubles (a `Struct` has no integers): a whole number
//! within ±2^53 becomes a JSON integer again, so `exp` and `iat` read as
//! they do from a token.

use serde_json::{Map, Number, Value};

/// The namespace `jwt_authn` writes its dynamic metadata under.
pub const JWT_AUTHN_NAMESPACE: &str = "envoy.filters.http.jwt_authn";

/// How deep a payload may nest (the same limit as a token's claims).
const MAX_DEPTH: usize = 16;

/// The largest metadata message read (every filter's metadata together).
pub const MAX_METADATA_BYTES: usize = 256 * 1024;

/// Why the metadata could not be read. Any of these refuses the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("the dynamic metadata is {size} bytes, more than the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("the dynamic metadata is not a valid protobuf message: {0}")]
    Wire(&'static str),
    #[error("the verified payload nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("the verified payload repeats the key `{0}`")]
    DuplicateKey(String),
    #[error("the verified payload has a value of no kind, or of two")]
    AmbiguousValue,
    #[error("the verified payload has a number JSON cannot hold")]
    BadNumber,
    #[error("`{key}` under `{namespace}` is not an object")]
    NotAnObject { namespace: String, key: String },
}

/// A verified token payload (the claims).
pub type VerifiedPayload = Map<String, Value>;

/// The `Struct` a filter left under one namespace of the stream's
/// metadata, as the metadata message carries it: found when the headers
/// arrive, decoded only when the identity is wanted
/// ([`super::TokenVerifier::accept_verified`]), which moves the payload
/// out of the decoded `Struct` rather than copying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceStruct {
    namespace: &'static str,
    /// The `Struct`'s wire bytes.
    bytes: Vec<u8>,
}

impl NamespaceStruct {
    /// The object stored under `key` in this `Struct`, decoded: `None`
    /// when there is none. The whole `Struct` is decoded and checked, not
    /// only the entry under `key`.
    pub fn payload(&self, key: &str) -> Result<Option<VerifiedPayload>, MetadataError> {
        let mut fields = decode_struct(&self.bytes, 0)?;
        match fields.remove(key) {
            None => Ok(None),
            Some(Value::Object(payload)) => Ok(Some(payload)),
            Some(_) => Err(MetadataError::NotAnObject {
                namespace: self.namespace.to_owned(),
                key: key.to_owned(),
            }),
        }
    }

    /// The `Struct`'s content in a form that does not depend on the order
    /// of its maps' entries, which Envoy changes from one request to the
    /// next for the same payload: the verification cache's key for it.
    ///
    /// The entries of every map are sorted; everything else (a list's
    /// items, a value's fields, the bytes of keys, strings and numbers) is
    /// kept in order, each part marked or length-prefixed, so that two
    /// `Struct`s with the same form hold the same entries, and
    /// [`Self::payload`] reads them the same or refuses both. The form is
    /// no stricter than the decoding: what the decoding refuses (a key
    /// twice, two kinds in one value) may still have a form, and is never
    /// cached, as it is refused before anything is stored under it.
    pub fn canonical_form(&self) -> Result<Vec<u8>, MetadataError> {
        let mut form = Vec::with_capacity(2 * self.bytes.len() + 64);
        canonical_struct(&self.bytes, 0, &mut form)?;
        Ok(form)
    }
}

/// A length (or count) as four octets, little-endian.
fn put_length(form: &mut Vec<u8>, length: usize) -> Result<(), MetadataError> {
    let length = u32::try_from(length).map_err(|_| MetadataError::Wire("length does not fit"))?;
    form.extend_from_slice(&length.to_le_bytes());
    Ok(())
}

/// A `Struct`'s form: the count of its entries, then each entry's form,
/// length-prefixed, in the order of those forms' octets.
fn canonical_struct(bytes: &[u8], depth: usize, form: &mut Vec<u8>) -> Result<(), MetadataError> {
    if depth > MAX_DEPTH {
        return Err(MetadataError::TooDeep);
    }
    // A form is at most about twice the wire bytes (a varint becomes eight
    // octets, a length four): room enough that the buffer rarely grows.
    let mut entries = Vec::with_capacity(2 * bytes.len());
    let mut spans = Vec::with_capacity(16);
    let mut reader = Reader::new(bytes);
    while let Some((field, wire)) = reader.tag()? {
        if (field, wire) != (1, Wire::Bytes) {
            return Err(MetadataError::Wire("unexpected field in a Struct"));
        }
        let start = entries.len();
        canonical_entry(reader.bytes()?, depth, &mut entries)?;
        spans.push(start..entries.len());
    }
    spans.sort_unstable_by(|a, b| entries.get(a.clone()).cmp(&entries.get(b.clone())));
    put_length(form, spans.len())?;
    for span in spans {
        let entry = entries.get(span).unwrap_or_default();
        put_length(form, entry.len())?;
        form.extend_from_slice(entry);
    }
    Ok(())
}

/// A map entry's form: the key's octets, length-prefixed, then the
/// value's form (whichever order the two fields came in).
fn canonical_entry(entry: &[u8], depth: usize, form: &mut Vec<u8>) -> Result<(), MetadataError> {
    let (key, value) = map_entry(entry)?;
    put_length(form, key.len())?;
    form.extend_from_slice(key);
    canonical_value(value.unwrap_or_default(), depth + 1, form)
}

/// A `Value`'s form: each field in order, as its number and its content
/// (a varint or a double as eight octets, a string length-prefixed, a
/// `Struct` or a list as their forms), then a 0.
fn canonical_value(bytes: &[u8], depth: usize, form: &mut Vec<u8>) -> Result<(), MetadataError> {
    if depth > MAX_DEPTH {
        return Err(MetadataError::TooDeep);
    }
    let mut reader = Reader::new(bytes);
    while let Some((field, wire)) = reader.tag()? {
        match (field, wire) {
            (1, Wire::Varint) | (4, Wire::Varint) => {
                form.push(if field == 1 { 1 } else { 4 });
                form.extend_from_slice(&reader.varint()?.to_le_bytes());
            }
            (2, Wire::Fixed64) => {
                form.push(2);
                form.extend_from_slice(&reader.fixed64()?);
            }
            (3, Wire::Bytes) => {
                form.push(3);
                let text = reader.bytes()?;
                put_length(form, text.len())?;
                form.extend_from_slice(text);
            }
            (5, Wire::Bytes) => {
                form.push(5);
                canonical_struct(reader.bytes()?, depth + 1, form)?;
            }
            (6, Wire::Bytes) => {
                form.push(6);
                canonical_list(reader.bytes()?, depth + 1, form)?;
            }
            _ => return Err(MetadataError::Wire("unexpected field in a Value")),
        }
    }
    form.push(0);
    Ok(())
}

/// A `ListValue`'s form: a 1 and the form of each item, in order, then a 0.
fn canonical_list(bytes: &[u8], depth: usize, form: &mut Vec<u8>) -> Result<(), MetadataError> {
    if depth > MAX_DEPTH {
        return Err(MetadataError::TooDeep);
    }
    let mut reader = Reader::new(bytes);
    while let Some((field, wire)) = reader.tag()? {
        if (field, wire) != (1, Wire::Bytes) {
            return Err(MetadataError::Wire("unexpected field in a ListValue"));
        }
        form.push(1);
        canonical_value(reader.bytes()?, depth + 1, form)?;
    }
    form.push(0);
    Ok(())
}

/// The `Struct` stored under `namespace` in the serialized `Metadata`
/// message `metadata`, undecoded. `None` when the metadata has no such
/// namespace (the filter stored nothing, or is not in the chain). The
/// message's top level is read in full: a namespace twice is refused.
pub fn namespace_struct(
    metadata: &[u8],
    namespace: &'static str,
) -> Result<Option<NamespaceStruct>, MetadataError> {
    if metadata.len() > MAX_METADATA_BYTES {
        return Err(MetadataError::TooLarge {
            size: metadata.len(),
            limit: MAX_METADATA_BYTES,
        });
    }
    // `Metadata.filter_metadata` (field 1) is a map<string, Struct>; its
    // other fields (typed metadata) are not Warden's business.
    let mut found: Option<&[u8]> = None;
    let mut reader = Reader::new(metadata);
    while let Some((field, wire)) = reader.tag()? {
        match (field, wire) {
            (1, Wire::Bytes) => {
                let (entry_key, value) = map_entry(reader.bytes()?)?;
                let entry_key = utf8(entry_key)?;
                if entry_key == namespace {
                    if found.is_some() {
                        return Err(MetadataError::DuplicateKey(entry_key));
                    }
                    found = Some(value.unwrap_or_default());
                }
            }
            (_, wire) => reader.skip(wire)?,
        }
    }
    Ok(found.map(|bytes| NamespaceStruct {
        namespace,
        bytes: bytes.to_vec(),
    }))
}

/// The payload `jwt_authn` stored under `namespace` / `key`, if it stored
/// one: [`namespace_struct`], then [`NamespaceStruct::payload`]. `None`
/// when the metadata has no such entry (the filter verified no token, or is
/// not in the chain).
#[cfg(test)]
fn verified_payload(
    metadata: &[u8],
    namespace: &'static str,
    key: &str,
) -> Result<Option<Map<String, Value>>, MetadataError> {
    match namespace_struct(metadata, namespace)? {
        Some(found) => found.payload(key),
        None => Ok(None),
    }
}

/// A map entry: field 1 the key's octets (a string; its callers check
/// UTF-8 where they read it as one), field 2 the value's bytes.
fn map_entry(entry: &[u8]) -> Result<(&[u8], Option<&[u8]>), MetadataError> {
    let mut key: Option<&[u8]> = None;
    let mut value: Option<&[u8]> = None;
    let mut reader = Reader::new(entry);
    while let Some((field, wire)) = reader.tag()? {
        match (field, wire) {
            (1, Wire::Bytes) if key.is_none() => key = Some(reader.bytes()?),
            (2, Wire::Bytes) if value.is_none() => value = Some(reader.bytes()?),
            _ => return Err(MetadataError::Wire("unexpected field in a map entry")),
        }
    }
    Ok((key.unwrap_or_default(), value))
}

/// `google.protobuf.Struct`: field 1, map<string, Value>.
fn decode_struct(bytes: &[u8], depth: usize) -> Result<Map<String, Value>, MetadataError> {
    if depth > MAX_DEPTH {
        return Err(MetadataError::TooDeep);
    }
    let mut fields = Map::new();
    let mut reader = Reader::new(bytes);
    while let Some((field, wire)) = reader.tag()? {
        if (field, wire) != (1, Wire::Bytes) {
            return Err(MetadataError::Wire("unexpected field in a Struct"));
        }
        let (key, value) = map_entry(reader.bytes()?)?;
        let key = utf8(key)?;
        let value = decode_value(value.unwrap_or_default(), depth + 1)?;
        if fields.contains_key(&key) {
            return Err(MetadataError::DuplicateKey(key));
        }
        fields.insert(key, value);
    }
    Ok(fields)
}

/// `google.protobuf.Value`: exactly one of null (1), number (2), string
/// (3), bool (4), struct (5), list (6).
fn decode_value(bytes: &[u8], depth: usize) -> Result<Value, MetadataError> {
    if depth > MAX_DEPTH {
        return Err(MetadataError::TooDeep);
    }
    let mut value: Option<Value> = None;
    let mut reader = Reader::new(bytes);
    while let Some((field, wire)) = reader.tag()? {
        let next = match (field, wire) {
            (1, Wire::Varint) => {
                reader.varint()?;
                Value::Null
            }
            (2, Wire::Fixed64) => number(f64::from_le_bytes(reader.fixed64()?))?,
            (3, Wire::Bytes) => Value::String(utf8(reader.bytes()?)?),
            (4, Wire::Varint) => Value::Bool(reader.varint()? != 0),
            (5, Wire::Bytes) => Value::Object(decode_struct(reader.bytes()?, depth + 1)?),
            (6, Wire::Bytes) => Value::Array(decode_list(reader.bytes()?, depth + 1)?),
            _ => return Err(MetadataError::Wire("unexpected field in a Value")),
        };
        if value.replace(next).is_some() {
            return Err(MetadataError::AmbiguousValue);
        }
    }
    value.ok_or(MetadataError::AmbiguousValue)
}

/// `google.protobuf.ListValue`: field 1, repeated Value.
fn decode_list(bytes: &[u8], depth: usize) -> Result<Vec<Value>, MetadataError> {
    if depth > MAX_DEPTH {
        return Err(MetadataError::TooDeep);
    }
    let mut values = Vec::new();
    let mut reader = Reader::new(bytes);
    while let Some((field, wire)) = reader.tag()? {
        if (field, wire) != (1, Wire::Bytes) {
            return Err(MetadataError::Wire("unexpected field in a ListValue"));
        }
        values.push(decode_value(reader.bytes()?, depth + 1)?);
    }
    Ok(values)
}

/// A whole number within ±2^53 as a JSON integer; any other finite number
/// as a float.
fn number(n: f64) -> Result<Value, MetadataError> {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if n.is_finite() && n.fract() == 0.0 && n.abs() <= EXACT {
        // Exact: within ±2^53 every whole double is an integer of that value.
        let whole = n as i64;
        return Ok(if whole >= 0 {
            Value::Number(Number::from(whole.unsigned_abs()))
        } else {
            Value::Number(Number::from(whole))
        });
    }
    Number::from_f64(n)
        .map(Value::Number)
        .ok_or(MetadataError::BadNumber)
}

fn utf8(bytes: &[u8]) -> Result<String, MetadataError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| MetadataError::Wire("a string is not UTF-8"))
}

/// Protobuf wire types Warden reads (groups are refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    Varint,
    Fixed64,
    Bytes,
    Fixed32,
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// The next field number and wire type; `None` at the end.
    fn tag(&mut self) -> Result<Option<(u64, Wire)>, MetadataError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let wire = match tag & 7 {
            0 => Wire::Varint,
            1 => Wire::Fixed64,
            2 => Wire::Bytes,
            5 => Wire::Fixed32,
            _ => return Err(MetadataError::Wire("unsupported wire type")),
        };
        let field = tag >> 3;
        if field == 0 {
            return Err(MetadataError::Wire("field number 0"));
        }
        Ok(Some((field, wire)))
    }

    fn varint(&mut self) -> Result<u64, MetadataError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self
                .rest
                .split_first()
                .ok_or(MetadataError::Wire("truncated varint"))?;
            self.rest = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(MetadataError::Wire("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], MetadataError> {
        if n > self.rest.len() {
            return Err(MetadataError::Wire("truncated field"));
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    fn fixed64(&mut self) -> Result<[u8; 8], MetadataError> {
        let bytes = self.take(8)?;
        let mut out = [0_u8; 8];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn bytes(&mut self) -> Result<&'a [u8], MetadataError> {
        let len = usize::try_from(self.varint()?)
            .map_err(|_| MetadataError::Wire("length does not fit"))?;
        self.take(len)
    }

    fn skip(&mut self, wire: Wire) -> Result<(), MetadataError> {
        match wire {
            Wire::Varint => self.varint().map(drop),
            Wire::Fixed64 => self.take(8).map(drop),
            Wire::Bytes => self.bytes().map(drop),
            Wire::Fixed32 => self.take(4).map(drop),
        }
    }
}

/// The metadata message `jwt_authn` would leave for `payload` under
/// `namespace` / `key`: what the harness and tests hand to the filter as
/// the `metadata` property.
#[cfg(any(test, feature = "testing"))]
pub fn encode_verified_payload(
    namespace: &str,
    key: &str,
    payload: &Map<String, Value>,
) -> Vec<u8> {
    let mut inner = Map::new();
    inner.insert(key.to_owned(), Value::Object(payload.clone()));
    let mut metadata = Vec::new();
    put_bytes(
        &mut metadata,
        1,
        &map_entry_bytes(namespace, &encode_struct(&inner)),
    );
    metadata
}

#[cfg(any(test, feature = "testing"))]
fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(any(test, feature = "testing"))]
fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(any(test, feature = "testing"))]
fn map_entry_bytes(key: &str, value: &[u8]) -> Vec<u8> {
    let mut entry = Vec::new();
    put_bytes(&mut entry, 1, key.as_bytes());
    put_bytes(&mut entry, 2, value);
    entry
}

#[cfg(any(test, feature = "testing"))]
fn encode_struct(fields: &Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in fields {
        put_bytes(&mut out, 1, &map_entry_bytes(key, &encode_value(value)));
    }
    out
}

#[cfg(any(test, feature = "testing"))]
fn encode_value(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    match value {
        Value::Null => {
            put_varint(&mut out, 1 << 3);
            put_varint(&mut out, 0);
        }
        Value::Number(n) => {
            put_varint(&mut out, (2 << 3) | 1);
            out.extend_from_slice(&n.as_f64().unwrap_or(f64::NAN).to_le_bytes());
        }
        Value::String(s) => put_bytes(&mut out, 3, s.as_bytes()),
        Value::Bool(b) => {
            put_varint(&mut out, 4 << 3);
            put_varint(&mut out, u64::from(*b));
        }
        Value::Object(fields) => put_bytes(&mut out, 5, &encode_struct(fields)),
        Value::Array(items) => {
            let mut list = Vec::new();
            for item in items {
                put_bytes(&mut list, 1, &encode_value(item));
            }
            put_bytes(&mut out, 6, &list);
        }
    }
    out
}

/// [`encode_verified_payload`] with every map's entries in reverse
/// order: Envoy writes a `Struct`'s entries in an order that changes from
/// one request to the next.
#[cfg(test)]
pub(crate) fn encode_verified_payload_reversed(
    namespace: &str,
    key: &str,
    payload: &Map<String, Value>,
) -> Vec<u8> {
    let payload = encode_value_reversed(&Value::Object(payload.clone()));
    let mut inner = Vec::new();
    put_bytes(&mut inner, 1, &map_entry_bytes(key, &payload));
    let mut metadata = Vec::new();
    put_bytes(&mut metadata, 1, &map_entry_bytes(namespace, &inner));
    metadata
}

#[cfg(test)]
fn encode_value_reversed(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    match value {
        Value::Object(fields) => {
            let mut entries = Vec::new();
            for (key, value) in fields.iter().rev() {
                put_bytes(
                    &mut entries,
                    1,
                    &map_entry_bytes(key, &encode_value_reversed(value)),
                );
            }
            put_bytes(&mut out, 5, &entries);
        }
        Value::Array(items) => {
            let mut list = Vec::new();
            for item in items {
                put_bytes(&mut list, 1, &encode_value_reversed(item));
            }
            put_bytes(&mut out, 6, &list);
        }
        other => out = encode_value(other),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn object(value: Value) -> Map<String, Value> {
        let Value::Object(fields) = value else {
            panic!("not an object: {value}")
        };
        fields
    }

    fn form_of(metadata: &[u8]) -> Vec<u8> {
        namespace_struct(metadata, JWT_AUTHN_NAMESPACE)
            .unwrap()
            .unwrap()
            .canonical_form()
            .unwrap()
    }

    /// The canonical form is the same whatever order the maps' entries
    /// come in, at every depth, and differs with anything else: a value, a
    /// key, a list's order, a kind, an entry more, a key twice.
    #[test]
    fn the_canonical_form_ignores_the_order_of_map_entries_and_nothing_else() {
        let payload = json!({
            "sub": "alice", "exp": 5, "groups": ["a", "b"], "n": null, "t": true,
            "act": {"sub": "bot", "typ": "agent", "act": {"sub": "x", "k": 1}},
        });
        let forward = encode_verified_payload(JWT_AUTHN_NAMESPACE, "p", &object(payload.clone()));
        let reversed =
            encode_verified_payload_reversed(JWT_AUTHN_NAMESPACE, "p", &object(payload.clone()));
        assert_ne!(forward, reversed);
        assert_eq!(form_of(&forward), form_of(&reversed));
        // A map entry with its value before its key is the same entry.
        let mut swapped_entry = Vec::new();
        put_bytes(&mut swapped_entry, 2, &encode_value(&json!("alice")));
        put_bytes(&mut swapped_entry, 1, b"sub");
        let mut fields = Vec::new();
        put_bytes(&mut fields, 1, &swapped_entry);
        let swapped = metadata_with_payload_fields(&fields);
        let mut fields = Vec::new();
        put_bytes(
            &mut fields,
            1,
            &map_entry_bytes("sub", &encode_value(&json!("alice"))),
        );
        assert_eq!(
            form_of(&swapped),
            form_of(&metadata_with_payload_fields(&fields))
        );

        let changed = |edit: &dyn Fn(&mut Value)| {
            let mut other = payload.clone();
            edit(&mut other);
            encode_verified_payload(JWT_AUTHN_NAMESPACE, "p", &object(other))
        };
        let others = [
            changed(&|p| p["groups"] = json!(["b", "a"])),
            changed(&|p| p["exp"] = json!("5")),
            changed(&|p| p["exp"] = json!(6)),
            changed(&|p| p["t"] = json!(false)),
            changed(&|p| p["n"] = json!(0)),
            changed(&|p| p["act"]["act"]["k"] = json!(2)),
            changed(&|p| p["extra"] = json!("")),
            changed(&|p| {
                let sub = p["sub"].take();
                p.as_object_mut().unwrap().remove("sub");
                p["sud"] = sub;
            }),
            encode_verified_payload(JWT_AUTHN_NAMESPACE, "q", &object(payload.clone())),
        ];
        for other in &others {
            assert_ne!(form_of(other), form_of(&forward));
        }
        // A key twice is not the key once (and the decoding refuses it).
        let entry = map_entry_bytes("sub", &encode_value(&json!("alice")));
        let mut once = Vec::new();
        put_bytes(&mut once, 1, &entry);
        let twice = [once.clone(), once.clone()].concat();
        let (once, twice) = (
            metadata_with_payload_fields(&once),
            metadata_with_payload_fields(&twice),
        );
        assert_ne!(form_of(&once), form_of(&twice));
        assert!(verified_payload(&twice, JWT_AUTHN_NAMESPACE, "p").is_err());
    }

    /// Random JSON values (xorshift64*) from few keys and strings, so that
    /// different payloads share most of their parts.
    struct Draw(u64);

    impl Draw {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) % n
        }

        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[usize::try_from(self.below(from.len() as u64)).unwrap()]
        }

        fn value(&mut self, depth: usize) -> Value {
            match self.below(if depth == 0 { 4 } else { 6 }) {
                0 => Value::Null,
                1 => json!(self.below(2) == 1),
                2 => json!(self.below(4)),
                3 => json!(self.pick(&["a", "b", "ab", ""])),
                4 => Value::Array((0..self.below(3)).map(|_| self.value(depth - 1)).collect()),
                _ => Value::Object(self.object(depth - 1)),
            }
        }

        fn object(&mut self, depth: usize) -> Map<String, Value> {
            (0..self.below(4))
                .map(|_| {
                    (
                        self.pick(&["k", "l", "kl", "m"]).to_owned(),
                        self.value(depth),
                    )
                })
                .collect()
        }
    }

    /// Over a thousand random payloads: a payload has one form whatever
    /// the order of its maps' entries, and two payloads with one form are
    /// the same payload (the reading the form stands for decodes it back).
    #[test]
    fn payloads_with_one_canonical_form_are_one_payload() {
        let mut draw = Draw(0x9e37_79b9_7f4a_7c15);
        let mut seen: HashMap<Vec<u8>, Map<String, Value>> = HashMap::new();
        for _ in 0..1200 {
            let payload = draw.object(3);
            let forward = encode_verified_payload(JWT_AUTHN_NAMESPACE, "p", &payload);
            let reversed = encode_verified_payload_reversed(JWT_AUTHN_NAMESPACE, "p", &payload);
            let form = form_of(&forward);
            assert_eq!(form, form_of(&reversed), "{payload:?}");
            assert_eq!(
                verified_payload(&reversed, JWT_AUTHN_NAMESPACE, "p"),
                Ok(Some(payload.clone()))
            );
            if let Some(earlier) = seen.insert(form, payload.clone()) {
                assert_eq!(earlier, payload);
            }
        }
        assert!(seen.len() > 500, "{} distinct payloads", seen.len());
    }

    /// The metadata for a payload `Struct` of these wire fields, under
    /// `jwt_authn`'s namespace and the key `p`.
    fn metadata_with_payload_fields(fields: &[u8]) -> Vec<u8> {
        let mut payload = Vec::new();
        put_bytes(&mut payload, 5, fields);
        let mut inner = Vec::new();
        put_bytes(&mut inner, 1, &map_entry_bytes("p", &payload));
        let mut metadata = Vec::new();
        put_bytes(
            &mut metadata,
            1,
            &map_entry_bytes(JWT_AUTHN_NAMESPACE, &inner),
        );
        metadata
    }

    /// What the decoding refuses as malformed or too deep has no form.
    #[test]
    fn malformed_and_deep_input_has_no_canonical_form() {
        let mut deep = json!("leaf");
        for _ in 0..20 {
            deep = json!({ "d": deep });
        }
        let bytes = encode_verified_payload(JWT_AUTHN_NAMESPACE, "p", &object(deep));
        let found = namespace_struct(&bytes, JWT_AUTHN_NAMESPACE)
            .unwrap()
            .unwrap();
        assert_eq!(found.canonical_form(), Err(MetadataError::TooDeep));
        let mut garbled = NamespaceStruct {
            namespace: JWT_AUTHN_NAMESPACE,
            bytes: found.bytes.clone(),
        };
        garbled.bytes.truncate(garbled.bytes.len() - 3);
        assert!(garbled.canonical_form().is_err());
    }

    /// What Envoy 1.40 returned for the property `metadata` after
    /// `jwt_authn` verified a token (`payload_in_metadata: jwt_payload`),
    /// captured once through a probe module: keys in Envoy's own order,
    /// every JSON kind present.
    const CAPTURED: &str = "0a82030a1c656e766f792e66696c746572732e687474702e6a77745f617574686e12e1020ade020a0b6a77745f7061796c6f616412ce022acb020a1c0a0369737312151a1368747470733a2f2f6964702e6578616d706c650a0b0a05656d707479120232000a090a036e756c120208000a0e0a016e120911000000000000f83f0a140a0667726f757073120a32080a061a042f7372650a080a02656f12022a000a100a027338120a1a0861626364656667680a070a0174120220010a150a0573636f7065120c1a0a726561642077726974650a0c0a0361756412051a036d63700a290a0c7265616c6d5f61636365737312192a170a150a05726f6c6573120c320a0a031a01610a031a01620a100a03657870120911000080c300c4da410a100a036269671209110000a8e1e0fe06420a320a03616374122b2a290a150a03616374120e2a0c0a0a0a0373756212031a01780a100a0373756212091a076167656e742d310a0e0a0373756212071a05616c6963650a100a036961741209110000803ffdc3da41";

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn reads_the_payload_envoy_stored() {
        let payload = verified_payload(&hex(CAPTURED), JWT_AUTHN_NAMESPACE, "jwt_payload")
            .unwrap()
            .unwrap();
        assert_eq!(
            Value::Object(payload),
            json!({
                "iss": "https://idp.example", "aud": "mcp", "sub": "alice",
                "exp": 1_796_211_470_u64, "iat": 1_796_207_870_u64,
                "realm_access": {"roles": ["a", "b"]}, "groups": ["/sre"],
                "scope": "read write", "n": 1.5, "big": 12_345_678_901_u64, "t": true,
                "nul": null, "empty": [], "eo": {},
                "act": {"sub": "agent-1", "act": {"sub": "x"}}, "s8": "abcdefgh"
            })
        );
    }

    #[test]
    fn another_namespace_or_key_is_no_payload() {
        let metadata = hex(CAPTURED);
        assert_eq!(
            verified_payload(&metadata, "envoy.filters.http.rbac", "jwt_payload"),
            Ok(None)
        );
        assert_eq!(
            verified_payload(&metadata, JWT_AUTHN_NAMESPACE, "other"),
            Ok(None)
        );
        assert_eq!(
            verified_payload(&[], JWT_AUTHN_NAMESPACE, "jwt_payload"),
            Ok(None)
        );
    }

    #[test]
    fn encoding_round_trips() {
        let payload =
            json!({"sub": "a", "exp": 5, "neg": -3, "f": 0.25, "l": [1, "x", null, {"k": false}]});
        let Value::Object(payload) = payload else {
            unreachable!()
        };
        let bytes = encode_verified_payload(JWT_AUTHN_NAMESPACE, "p", &payload);
        assert_eq!(
            verified_payload(&bytes, JWT_AUTHN_NAMESPACE, "p"),
            Ok(Some(payload))
        );
    }

    #[test]
    fn the_namespace_struct_is_found_whatever_is_beside_it() {
        let Value::Object(payload) = json!({"sub": "a", "exp": 1_900_000_000}) else {
            unreachable!()
        };
        let alone = encode_verified_payload(JWT_AUTHN_NAMESPACE, "p", &payload);
        let mut inner = Map::new();
        inner.insert("p".into(), Value::Object(payload.clone()));
        let want = encode_struct(&inner);
        let found = namespace_struct(&alone, JWT_AUTHN_NAMESPACE)
            .unwrap()
            .unwrap();
        assert_eq!(found.bytes.as_slice(), want.as_slice());
        assert_eq!(found.payload("p"), Ok(Some(payload.clone())));
        assert_eq!(found.payload("q"), Ok(None));
        // Another filter's namespace before and after it, and a field
        // Warden skips: the same bytes are found.
        let other = encode_verified_payload("envoy.filters.http.rbac", "p", &payload);
        let mut skipped = Vec::new();
        put_bytes(&mut skipped, 2, b"typed metadata");
        let crowded = [other.clone(), alone, skipped, other].concat();
        let found = namespace_struct(&crowded, JWT_AUTHN_NAMESPACE)
            .unwrap()
            .unwrap();
        assert_eq!(found.bytes.as_slice(), want.as_slice());
        // A namespace with no value is an empty `Struct`: no payload.
        let mut empty = Vec::new();
        put_bytes(&mut empty, 1, &{
            let mut entry = Vec::new();
            put_bytes(&mut entry, 1, JWT_AUTHN_NAMESPACE.as_bytes());
            entry
        });
        let found = namespace_struct(&empty, JWT_AUTHN_NAMESPACE)
            .unwrap()
            .unwrap();
        assert_eq!(found.bytes.as_slice(), b"");
        assert_eq!(found.payload("p"), Ok(None));
    }

    #[test]
    fn two_readings_are_refused() {
        // The namespace twice.
        let payload = json!({"sub": "a"});
        let Value::Object(payload) = payload else {
            unreachable!()
        };
        let once = encode_verified_payload(JWT_AUTHN_NAMESPACE, "p", &payload);
        let twice = [once.clone(), once].concat();
        assert!(matches!(
            verified_payload(&twice, JWT_AUTHN_NAMESPACE, "p"),
            Err(MetadataError::DuplicateKey(_))
        ));
        // A key twice inside the payload: protobuf would keep the last.
        let mut fields = Vec::new();
        put_bytes(
            &mut fields,
            1,
            &map_entry_bytes("sub", &encode_value(&json!("alice"))),
        );
        put_bytes(
            &mut fields,
            1,
            &map_entry_bytes("sub", &encode_value(&json!("root"))),
        );
        let mut outer = Vec::new();
        put_bytes(
            &mut outer,
            1,
            &map_entry_bytes("p", &{
                let mut v = Vec::new();
                put_bytes(&mut v, 5, &fields);
                v
            }),
        );
        let mut metadata = Vec::new();
        put_bytes(
            &mut metadata,
            1,
            &map_entry_bytes(JWT_AUTHN_NAMESPACE, &outer),
        );
        assert_eq!(
            verified_payload(&metadata, JWT_AUTHN_NAMESPACE, "p"),
            Err(MetadataError::DuplicateKey("sub".into()))
        );
        // A value that is both a string and a bool.
        let mut value = encode_value(&json!("x"));
        value.extend(encode_value(&json!(true)));
        let mut fields = Vec::new();
        put_bytes(&mut fields, 1, &map_entry_bytes("sub", &value));
        assert_eq!(
            decode_struct(&fields, 0),
            Err(MetadataError::AmbiguousValue)
        );
    }

    #[test]
    fn malformed_and_deep_input_is_refused() {
        let metadata = hex(CAPTURED);
        for cut in [1, 7, 40, metadata.len() - 1] {
            assert!(
                verified_payload(&metadata[..cut], JWT_AUTHN_NAMESPACE, "jwt_payload").is_err(),
                "{cut}"
            );
        }
        let mut deep = json!("leaf");
        for _ in 0..20 {
            deep = json!({ "d": deep });
        }
        let Value::Object(deep) = deep else {
            unreachable!()
        };
        let bytes = encode_verified_payload(JWT_AUTHN_NAMESPACE, "p", &deep);
        assert_eq!(
            verified_payload(&bytes, JWT_AUTHN_NAMESPACE, "p"),
            Err(MetadataError::TooDeep)
        );
        let big = vec![0_u8; MAX_METADATA_BYTES + 1];
        assert!(matches!(
            verified_payload(&big, JWT_AUTHN_NAMESPACE, "p"),
            Err(MetadataError::TooLarge { .. })
        ));
        // Not an object under the key.
        let mut inner = Vec::new();
        put_bytes(
            &mut inner,
            1,
            &map_entry_bytes("p", &encode_value(&json!("text"))),
        );
        let mut metadata = Vec::new();
        put_bytes(
            &mut metadata,
            1,
            &map_entry_bytes(JWT_AUTHN_NAMESPACE, &inner),
        );
        assert!(matches!(
            verified_payload(&metadata, JWT_AUTHN_NAMESPACE, "p"),
            Err(MetadataError::NotAnObject { .. })
        ));
        // A double that is not a JSON number.
        let mut value = Vec::new();
        put_varint(&mut value, (2 << 3) | 1);
        value.extend_from_slice(&f64::INFINITY.to_le_bytes());
        assert_eq!(decode_value(&value, 0), Err(MetadataError::BadNumber));
    }
}
