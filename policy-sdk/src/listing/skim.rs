//! Reading a response body for lists without building it.
//!
//! Most responses hold no list (a tool's answer, a notification), and
//! building each into a `Value` tree (every string copied, every object a
//! map) only to find that out was most of what reading a response cost.
//! The skim reads the same bytes with the same parser and refuses what
//! [`parse_strict`](crate::json::parse_strict) refuses — invalid UTF-8 and
//! lone surrogates (strings are decoded, not skipped), duplicate keys at any
//! depth, nesting past the limit, numbers out of range, trailing data — but
//! keeps nothing, except the lists: for each array under a list key of a
//! message's `result`, the name each entry gives. [`super::ListCutter`]
//! cuts a list by leaving entries' bytes out (found by [`super::spans`]),
//! so a body with a list is never built either. Anything the skim refuses
//! is read the full way, which then gives the very error it always gave.
//!
//! Measured (callgrind, native): a 25 KB tool result took about 1,085,000
//! instructions to parse into a tree and drop, 497,000 to skim; the small
//! answer of the benchmark's `tools/call` about 4,000 and 3,000. The
//! benchmark's 100-tool list (29 KB, half of it cut) took 245 µs natively
//! to parse into a tree, cut and write out again; 101 µs skimmed, walked
//! and spliced (`list/cut/100_tools_json`). Taking each entry's bytes with
//! serde_json's raw values instead of the walk measured 88 µs, but that
//! feature makes every `serde_json::Value` in the program read an object
//! keyed `$serde_json::private::RawValue` as the JSON text in its string,
//! a second reading of policies and configuration.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

use super::ListKind;
use crate::json::{JsonLimits, Key, Keys, read_document};

/// Where a value sits, as far as lists go: [`super::ListCutter`] cuts an
/// array under a list key of the `result` of a message, the body itself or
/// an object in a batch, by the name each entry gives under its entry key.
/// The walk that finds entries' bytes ([`super::spans`]) places values by
/// the same rule, [`Place::member`] and [`Place::items`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    Body,
    InBatch,
    ResultOfMessage,
    UnderListKey(ListKind),
    /// An entry of a list, named by its member `key`.
    Entry {
        key: &'static str,
    },
    /// The value of an entry's naming member.
    Name,
    Elsewhere,
}

/// Reads one value; its result holds the lists found in it.
#[derive(Clone, Copy)]
struct Skim {
    depth: usize,
    max_depth: usize,
    place: Place,
    /// The message the value is in: its index in a batch (0 for a body
    /// that is one message).
    message: usize,
}

/// A list found under a list key of a message's `result`.
pub(super) struct FoundList<'de> {
    /// The message's index in a batch (0 for a single message).
    pub message: usize,
    pub kind: ListKind,
    /// Each entry's name: the string under its entry key (`None` when it
    /// has none: not an object, no such member, or not a string).
    pub names: Vec<Option<Cow<'de, str>>>,
}

/// What a value holds: nothing (most values), the lists in it in body
/// order, or (an entry, and its naming member) the entry's name. An enum
/// rather than both fields: every value of every response returns one,
/// and the smaller it is, the less an allowed call costs.
#[derive(Default)]
enum Found<'de> {
    #[default]
    Nothing,
    Lists(Vec<FoundList<'de>>),
    Name(Cow<'de, str>),
}

impl<'de> Found<'de> {
    /// Adds the lists of a value inside this one.
    fn join(&mut self, other: Self) {
        if let Self::Lists(more) = other {
            match self {
                Self::Lists(lists) => lists.extend(more),
                Self::Nothing | Self::Name(_) => *self = Self::Lists(more),
            }
        }
    }
}

/// The lists of `bytes`, in body order (none: it can go on byte for byte),
/// when `bytes` is one strict JSON value within `limits`; `None` says only
/// that it must be read the full way.
pub(super) fn survey(bytes: &[u8], limits: JsonLimits) -> Option<Vec<FoundList<'_>>> {
    let skim = Skim {
        depth: 0,
        max_depth: limits.max_depth,
        place: Place::Body,
        message: 0,
    };
    read_document(bytes, limits, skim)
        .ok()
        .map(|found| match found {
            Found::Lists(lists) => lists,
            Found::Nothing | Found::Name(_) => Vec::new(),
        })
}

impl Place {
    /// Where the value of member `key` sits in an object at this place.
    pub(super) fn member(self, key: &str) -> Self {
        match self {
            Self::Body | Self::InBatch if key == "result" => Self::ResultOfMessage,
            Self::ResultOfMessage => ListKind::ALL
                .into_iter()
                .find(|kind| kind.result_key() == key)
                .map_or(Self::Elsewhere, Self::UnderListKey),
            Self::Entry { key: naming } if key == naming => Self::Name,
            _ => Self::Elsewhere,
        }
    }

    /// Whether a member of an object at this place can be (or lead to) a
    /// list: only in a message or its `result`. Below, no key places one,
    /// so a reader need not decode keys there.
    pub(super) fn leads_to_lists(self) -> bool {
        matches!(self, Self::Body | Self::InBatch | Self::ResultOfMessage)
    }

    /// Where the items of an array at this place sit (a list's entries
    /// are placed by the list's reader).
    pub(super) fn items(self) -> Self {
        match self {
            Self::Body => Self::InBatch,
            _ => Self::Elsewhere,
        }
    }
}

impl Skim {
    /// The same bound as the full reader's, counted the same way.
    fn nested<E: serde::de::Error>(self, place: Place) -> Result<Self, E> {
        let depth = self.depth + 1;
        if depth > self.max_depth {
            return Err(E::custom("nesting too deep"));
        }
        Ok(Self {
            depth,
            place,
            ..self
        })
    }

    /// The entries of a list, each read strictly (at the depth it sits)
    /// for its name.
    fn list<'de, A: SeqAccess<'de>>(
        self,
        kind: ListKind,
        mut seq: A,
    ) -> Result<Found<'de>, A::Error> {
        let entry = Skim {
            place: Place::Entry {
                key: kind.entry_key(),
            },
            ..self.nested(Place::Elsewhere)?
        };
        let mut names = Vec::new();
        while let Some(found) = seq.next_element_seed(entry)? {
            names.push(match found {
                Found::Name(name) => Some(name),
                Found::Nothing | Found::Lists(_) => None,
            });
        }
        Ok(Found::Lists(vec![FoundList {
            message: self.message,
            kind,
            names,
        }]))
    }
}

impl<'de> DeserializeSeed<'de> for Skim {
    type Value = Found<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Found<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skim {
    type Value = Found<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Found<'de>, E> {
        Ok(Found::default())
    }

    fn visit_i64<E>(self, _: i64) -> Result<Found<'de>, E> {
        Ok(Found::default())
    }

    fn visit_u64<E>(self, _: u64) -> Result<Found<'de>, E> {
        Ok(Found::default())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Found<'de>, E> {
        if v.is_finite() {
            Ok(Found::default())
        } else {
            Err(E::custom("number is not finite"))
        }
    }

    // Strings reach these decoded (UTF-8 checked, escapes and surrogate
    // pairs resolved); only an entry's name is kept.
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Found<'de>, E> {
        Ok(if self.place == Place::Name {
            Found::Name(Cow::Borrowed(v))
        } else {
            Found::Nothing
        })
    }

    fn visit_str<E>(self, v: &str) -> Result<Found<'de>, E> {
        Ok(if self.place == Place::Name {
            Found::Name(Cow::Owned(v.to_owned()))
        } else {
            Found::Nothing
        })
    }

    fn visit_unit<E>(self) -> Result<Found<'de>, E> {
        Ok(Found::default())
    }

    fn visit_none<E>(self) -> Result<Found<'de>, E> {
        Ok(Found::default())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Found<'de>, A::Error> {
        if let Place::UnderListKey(kind) = self.place {
            return self.list(kind, seq);
        }
        let items = self.place.items();
        let inner = self.nested(items)?;
        let mut found = Found::default();
        let mut index = 0;
        while let Some(item) = seq.next_element_seed(Skim {
            message: if items == Place::InBatch {
                index
            } else {
                self.message
            },
            ..inner
        })? {
            found.join(item);
            index += 1;
        }
        Ok(found)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found<'de>, A::Error> {
        let inner = self.nested(Place::Elsewhere)?;
        let mut keys = Keys::default();
        let mut found = Found::default();
        while let Some(key) = map.next_key_seed(Key)? {
            // A member's place follows from this object's own place.
            let value = Skim {
                place: self.place.member(&key),
                ..inner
            };
            if keys.insert(key).is_err() {
                return Err(A::Error::custom("duplicate key"));
            }
            let member = map.next_value_seed(value)?;
            if value.place == Place::Name {
                // Only a string names the entry.
                if let Found::Name(_) = member {
                    found = member;
                }
            } else {
                found.join(member);
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::json::{json_test_suite, parse_strict, spliced};

    const LIMITS: JsonLimits = JsonLimits {
        max_bytes: 1 << 20,
        max_depth: 64,
    };

    /// The skim read `bytes` whole and found no list in them.
    fn passes_untouched(bytes: &[u8], limits: JsonLimits) -> bool {
        survey(bytes, limits).is_some_and(|lists| lists.is_empty())
    }

    /// What the full reader decides: the body is strict JSON and
    /// `ListCutter::cut_value` would find no list in it.
    fn full_reader_passes(bytes: &[u8], limits: JsonLimits) -> bool {
        let Ok(value) = parse_strict(bytes, limits) else {
            return false;
        };
        let holds_list = |message: &Value| {
            let result = message.as_object().and_then(|m| m.get("result"));
            ListKind::ALL.iter().any(|kind| {
                result
                    .and_then(|r| r.as_object())
                    .and_then(|r| r.get(kind.result_key()))
                    .is_some_and(Value::is_array)
            })
        };
        match &value {
            Value::Array(batch) => !batch.iter().any(holds_list),
            message => !holds_list(message),
        }
    }

    fn agree(body: &str) {
        assert_eq!(
            passes_untouched(body.as_bytes(), LIMITS),
            full_reader_passes(body.as_bytes(), LIMITS),
            "{body}"
        );
    }

    /// Where `leads_to_lists` says no, no key leads to a list: the walk
    /// that skips decoding keys there misses nothing the skim finds.
    #[test]
    fn only_places_that_lead_to_lists_place_them() {
        let mut places = vec![
            Place::Body,
            Place::InBatch,
            Place::ResultOfMessage,
            Place::Name,
            Place::Elsewhere,
        ];
        for kind in ListKind::ALL {
            places.push(Place::UnderListKey(kind));
            places.push(Place::Entry {
                key: kind.entry_key(),
            });
        }
        let mut keys = vec!["result", "name", "uri", "other"];
        keys.extend(ListKind::ALL.map(ListKind::result_key));
        for place in places.into_iter().filter(|p| !p.leads_to_lists()) {
            for key in &keys {
                assert!(
                    !matches!(
                        place.member(key),
                        Place::ResultOfMessage | Place::UnderListKey(_)
                    ),
                    "{key}"
                );
            }
        }
        assert!(Place::Body.leads_to_lists() && Place::ResultOfMessage.leads_to_lists());
    }

    #[test]
    fn the_skim_finds_the_lists_the_cutter_cuts() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"prompts":[{"name":"p"}]}}"#,
            r#"{"id":1,"result":{"resources":[1]},"method":"x"}"#,
            r#"{"id":1,"result":{"resourceTemplates":[]}}"#,
            r#"[{"id":1,"result":{}},{"id":2,"result":{"tools":[]}}]"#,
            // Escaped spellings are the keys they decode to.
            r#"{"id":1,"res\u0075lt":{"t\u006fols":[]}}"#,
        ] {
            assert!(!passes_untouched(body.as_bytes(), LIMITS), "{body}");
            agree(body);
        }
    }

    #[test]
    fn bodies_without_a_list_to_cut_pass() {
        for body in [
            r#"{"jsonrpc":"2.0","id":7,"result":{"content":[],"isError":false}}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":{"tools":{"not":"an array"}}}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":{"nested":{"tools":[]}}}"#,
            r#"{"jsonrpc":"2.0","method":"x","params":{"result":{"tools":[]}}}"#,
            r#"{"tools":[],"result":"tools"}"#,
            r#"[[{"result":{"tools":[]}}]]"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"é\n😀"}}"#,
            r#"[]"#,
            r#"{}"#,
            "  {\"a\":[1,2.5,-3e10,true,null,\"\\ud83d\\ude00\"]}  ",
        ] {
            assert!(passes_untouched(body.as_bytes(), LIMITS), "{body}");
            agree(body);
        }
    }

    #[test]
    fn what_the_full_reader_refuses_never_passes() {
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        let bodies: Vec<Vec<u8>> = vec![
            br#"{"id":1,"result":{"content":[{"a":1,"a":2}]}}"#.to_vec(),
            br#"{"id":1,"result":{},"id":2}"#.to_vec(),
            br#"{"name":1,"n\u0061me":2}"#.to_vec(),
            br#"{"text":"\ud800"}"#.to_vec(),
            b"{\"text\":\"\xff\"}".to_vec(),
            b"{\"k\xc3\":1}".to_vec(),
            br#"{"n":1e400}"#.to_vec(),
            br#"{"a":1} {"b":2}"#.to_vec(),
            br#"{"a":1,}"#.to_vec(),
            br#"{"a":"unterminated}"#.to_vec(),
            b"{\"a\":\"tab\there\"}".to_vec(),
            deep.into_bytes(),
            Vec::new(),
        ];
        for body in bodies {
            assert!(
                !passes_untouched(&body, LIMITS),
                "{}",
                String::from_utf8_lossy(&body)
            );
            assert!(!full_reader_passes(&body, LIMITS));
        }
        let small = JsonLimits {
            max_bytes: 4,
            max_depth: 2,
        };
        assert!(!passes_untouched(b"[[[1]]]", small));
        assert!(!passes_untouched(br#"{"a":1}"#, small));
    }

    #[test]
    fn duplicate_keys_are_found_in_objects_of_any_size() {
        let object = |keys: &[String]| {
            let members: Vec<String> = keys.iter().map(|k| format!("\"{k}\":0")).collect();
            format!(
                r#"{{"id":1,"result":{{"content":[{{{}}}]}}}}"#,
                members.join(",")
            )
        };
        let names: Vec<String> = (0..20).map(|n| format!("k{n}")).collect();
        agree(&object(&names));
        assert!(passes_untouched(object(&names).as_bytes(), LIMITS));
        // A key seen among the first few, again after the set took over; a
        // key seen after it, again; a repeat among the first few.
        for (first, again) in [(2, 15), (12, 18), (1, 5)] {
            let mut keys = names.clone();
            if let Some(slot) = keys.get_mut(again) {
                *slot = format!("k{first}");
            }
            let body = object(&keys);
            assert!(!passes_untouched(body.as_bytes(), LIMITS), "{body}");
            agree(&body);
        }
    }

    /// Every file of JSONTestSuite, as a body and as a tool list inside a
    /// result: the skim and the full reader give the same answer.
    #[test]
    fn the_skim_agrees_with_the_full_reader_on_json_test_suite() {
        for bytes in json_test_suite() {
            let wrapped = spliced(
                r#"{"jsonrpc":"2.0","id":1,"result":{"tools":"#,
                &bytes,
                "}}",
            );
            let inside = spliced(
                r#"{"jsonrpc":"2.0","id":1,"result":{"content":"#,
                &bytes,
                "}}",
            );
            for body in [&bytes, &wrapped, &inside] {
                assert_eq!(
                    passes_untouched(body, LIMITS),
                    full_reader_passes(body, LIMITS),
                    "{}",
                    String::from_utf8_lossy(body)
                );
            }
        }
    }
}
