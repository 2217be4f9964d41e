//! How a server that validates tool arguments leniently may read a value:
//! the reading deny rules judge.
//!
//! The MCP Python SDK validates `tools/call` arguments with a pydantic model
//! built from the tool's signature, in lax mode, after parsing JSON strings
//! given for parameters that are not `str` (FastMCP's pre-parse). So
//! `force: "yes"` reaches a `bool` parameter as `True`, `replicas: "0"` an
//! `int` one as `0`, and `options: "{\"force\": true}"` a model as an object.
//! A deny rule that compared JSON types exactly would let all three through.
//!
//! Warden does not know the tool's parameter types. A deny condition's value
//! therefore matches an argument when some type that accepts the condition's
//! value reads the argument as the same value ([`could_equal`]). Where the
//! server's reading is not certain (a JSON-looking string Warden's strict
//! parser refuses, a NaN checked against a range), the deny holds. Allow
//! rules never use this module: they compare exactly, so a spelling they do
//! not expect fails closed.
//!
//! The conversions, as pydantic 2 applies them in lax (Python) mode:
//!
//! | type | reads |
//! |---|---|
//! | bool | `true`/`false`; the numbers `0`, `1`, `0.0`, `1.0`; the strings `0 off f false n no` and `1 on t true y yes` in any ASCII case, nothing else (no surrounding spaces) |
//! | number | numbers; `true` as 1, `false` as 0; strings that are a decimal number after trimming whitespace (`" 1"`, `"+1"`, `"01"`, `"1.0"`, `"1e0"`, `".5"`, `"1_000"`, `"inf"`, `"nan"`) |
//! | string | strings only (pydantic 2 does not turn numbers into strings) |
//! | null | `null`; the string `"null"` (pre-parse) |
//! | object, array | objects and arrays, element by element in this same reading; strings holding a JSON object or array (pre-parse) |
//!
//! A JSON pointer walks into a string that holds a JSON object or array, as
//! the server reads it after the pre-parse ([`lookup`]).

use std::borrow::Cow;

use serde_json::Value;

use super::pointer::{Pointer, array_index};
use crate::json::{JsonLimits, parse_strict_str};

/// What a server may make of a value, for one parameter type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reading<T> {
    /// The value it reads.
    Read(T),
    /// It refuses the value (a validation error: the tool does not run).
    Refused,
    /// Warden cannot tell: deny rules take it as a match.
    Unsure,
}

/// Where a pointer leads in the server's reading of the arguments.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lookup<'a> {
    Found(Cow<'a, Value>),
    /// Nothing there: an absent argument satisfies no test.
    Absent,
    /// The path runs through a string that looks like JSON but that Warden's
    /// strict parser refuses (duplicate keys, `NaN`, too deep): the server's
    /// lenient parser may read something there.
    Unsure,
}

/// Follows `pointer` (RFC 6901) through `arguments`, parsing a string met on
/// the way as JSON when it holds an object or array.
pub(crate) fn lookup<'a>(arguments: &'a Value, pointer: &Pointer) -> Lookup<'a> {
    walk(arguments, pointer.tokens())
}

fn walk<'a>(value: &'a Value, tokens: &[String]) -> Lookup<'a> {
    let Some((token, rest)) = tokens.split_first() else {
        return Lookup::Found(Cow::Borrowed(value));
    };
    match value {
        Value::Object(map) => match map.get(token.as_str()) {
            Some(next) => walk(next, rest),
            None => Lookup::Absent,
        },
        Value::Array(items) => match array_index(token).and_then(|i| items.get(i)) {
            Some(next) => walk(next, rest),
            None => Lookup::Absent,
        },
        Value::String(text) => match parse_container(text) {
            Reading::Read(parsed) => match walk(&parsed, tokens) {
                Lookup::Found(found) => Lookup::Found(Cow::Owned(found.into_owned())),
                Lookup::Absent => Lookup::Absent,
                Lookup::Unsure => Lookup::Unsure,
            },
            Reading::Refused => Lookup::Absent,
            Reading::Unsure => Lookup::Unsure,
        },
        Value::Null | Value::Bool(_) | Value::Number(_) => Lookup::Absent,
    }
}

/// A string holding a JSON object or array, parsed (FastMCP's pre-parse).
fn parse_container(text: &str) -> Reading<Value> {
    let limits = JsonLimits {
        max_bytes: text.len(),
        max_depth: 64,
    };
    match parse_strict_str(text, limits) {
        Ok(parsed @ (Value::Object(_) | Value::Array(_))) => Reading::Read(parsed),
        Ok(_) => Reading::Refused,
        // Python's parser keeps the last of duplicate keys and reads `NaN`
        // and `Infinity`; Warden's refuses them. What looks like a container
        // may still be one to the server.
        Err(_) if text.trim_start().starts_with(['{', '[']) => Reading::Unsure,
        Err(_) => Reading::Refused,
    }
}

/// The value read by a `bool` parameter.
pub(crate) fn read_bool(value: &Value) -> Reading<bool> {
    match value {
        Value::Bool(b) => Reading::Read(*b),
        Value::Number(n) => match n.as_f64() {
            Some(0.0) => Reading::Read(false),
            Some(1.0) => Reading::Read(true),
            _ => Reading::Refused,
        },
        Value::String(text) => {
            let lower = text.to_ascii_lowercase();
            match lower.as_str() {
                "0" | "off" | "f" | "false" | "n" | "no" => Reading::Read(false),
                "1" | "on" | "t" | "true" | "y" | "yes" => Reading::Read(true),
                _ => Reading::Refused,
            }
        }
        Value::Null | Value::Array(_) | Value::Object(_) => Reading::Refused,
    }
}

/// The value read by an `int` or `float` parameter. One reading serves both:
/// every string an `int` accepts, a `float` reads as the same number.
pub(crate) fn read_number(value: &Value) -> Reading<f64> {
    match value {
        Value::Bool(b) => Reading::Read(if *b { 1.0 } else { 0.0 }),
        Value::Number(n) => match n.as_f64() {
            Some(x) => Reading::Read(x),
            None => Reading::Unsure,
        },
        Value::String(text) => match parse_decimal(text.trim()) {
            Some(x) => Reading::Read(x),
            None => Reading::Refused,
        },
        Value::Null | Value::Array(_) | Value::Object(_) => Reading::Refused,
    }
}

/// A decimal number as Python's `float()` spells one: sign, digits with
/// single `_` between them, fraction, exponent, `inf`, `infinity`, `nan`.
fn parse_decimal(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'_' {
            let digit_at = |j: Option<usize>| {
                j.and_then(|j| bytes.get(j))
                    .is_some_and(|c: &u8| c.is_ascii_digit())
            };
            if !digit_at(i.checked_sub(1)) || !digit_at(i.checked_add(1)) {
                return None;
            }
        }
    }
    let plain: String = text.chars().filter(|c| *c != '_').collect();
    // Rust's parser takes the same grammar without underscores; it refuses
    // anything non-ASCII, as pydantic does (no Unicode digits).
    plain.parse::<f64>().ok()
}

/// The value read by an object, array or model parameter.
fn read_container(value: &Value) -> Reading<Cow<'_, Value>> {
    match value {
        Value::Object(_) | Value::Array(_) => Reading::Read(Cow::Borrowed(value)),
        Value::String(text) => match parse_container(text) {
            Reading::Read(parsed) => Reading::Read(Cow::Owned(parsed)),
            Reading::Refused => Reading::Refused,
            Reading::Unsure => Reading::Unsure,
        },
        Value::Null | Value::Bool(_) | Value::Number(_) => Reading::Refused,
    }
}

/// Whether a parameter that may hold `null` reads it.
fn reads_null(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.trim() == "null",
        _ => false,
    }
}

/// JSON equality where numbers compare by value (`1` equals `1.0`): what
/// allow rules use.
pub(crate) fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64() && x.as_f64().is_some(),
        _ => a == b,
    }
}

/// Whether a server could read `value` as the same thing as `expected`: for
/// some parameter type that accepts `expected`, it reads `value` as the
/// same value (or Warden cannot tell what it reads).
pub(crate) fn could_equal(value: &Value, expected: &Value) -> bool {
    if json_equal(value, expected) {
        return true;
    }
    if alike(read_bool(expected), read_bool(value)) {
        return true;
    }
    if alike(read_number(expected), read_number(value)) {
        return true;
    }
    if reads_null(expected) && reads_null(value) {
        return true;
    }
    if let Reading::Read(want) = read_container(expected) {
        match read_container(value) {
            Reading::Read(got) => return containers_could_equal(&got, &want),
            Reading::Unsure => return true,
            Reading::Refused => {}
        }
    }
    false
}

/// Whether a type that reads `expected` reads `value` as the same (or
/// Warden cannot tell). A type that refuses `expected` is not the
/// parameter's type.
fn alike<T: PartialEq>(expected: Reading<T>, value: Reading<T>) -> bool {
    match (expected, value) {
        (Reading::Read(want), Reading::Read(got)) => want == got,
        (Reading::Read(_), Reading::Unsure) => true,
        _ => false,
    }
}

/// Objects and arrays read element by element. An array may be a set or a
/// tuple to the server, so order and repetition are not compared: each
/// element of one must be readable as some element of the other. An object
/// with keys the condition does not name may be a model that ignores them,
/// so only the condition's keys are compared.
fn containers_could_equal(value: &Value, expected: &Value) -> bool {
    match (value, expected) {
        (Value::Array(got), Value::Array(want)) => {
            got.iter().all(|g| want.iter().any(|w| could_equal(g, w)))
                && want.iter().all(|w| got.iter().any(|g| could_equal(g, w)))
        }
        (Value::Object(got), Value::Object(want)) => want
            .iter()
            .all(|(key, w)| got.get(key).is_some_and(|g| could_equal(g, w))),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pointer(text: &str) -> Pointer {
        Pointer::parse(text).expect("a pointer")
    }

    // One test per row of the conversion table and per branch of the walk.

    #[test]
    fn bool_reads_booleans_and_the_numbers_zero_and_one() {
        assert_eq!(read_bool(&json!(true)), Reading::Read(true));
        assert_eq!(read_bool(&json!(0)), Reading::Read(false));
        assert_eq!(read_bool(&json!(1.0)), Reading::Read(true));
        assert_eq!(read_bool(&json!(2)), Reading::Refused);
        assert_eq!(read_bool(&json!(0.5)), Reading::Refused);
    }

    #[test]
    fn bool_reads_its_words_in_any_ascii_case_and_nothing_else() {
        for word in ["true", "True", "TRUE", "t", "Y", "yes", "On", "1"] {
            assert_eq!(read_bool(&json!(word)), Reading::Read(true), "{word}");
        }
        for word in ["false", "F", "n", "NO", "off", "0"] {
            assert_eq!(read_bool(&json!(word)), Reading::Read(false), "{word}");
        }
        for word in [" true", "true ", "1.0", "tr", "", "ｔrue", "null"] {
            assert_eq!(read_bool(&json!(word)), Reading::Refused, "{word:?}");
        }
    }

    #[test]
    fn bool_refuses_null_arrays_and_objects() {
        assert_eq!(read_bool(&json!(null)), Reading::Refused);
        assert_eq!(read_bool(&json!([true])), Reading::Refused);
        assert_eq!(read_bool(&json!({"a": true})), Reading::Refused);
    }

    #[test]
    fn number_reads_numbers_and_booleans() {
        assert_eq!(read_number(&json!(3)), Reading::Read(3.0));
        assert_eq!(read_number(&json!(-0.5)), Reading::Read(-0.5));
        assert_eq!(read_number(&json!(true)), Reading::Read(1.0));
        assert_eq!(read_number(&json!(false)), Reading::Read(0.0));
    }

    #[test]
    fn number_reads_decimal_strings_after_trimming() {
        for (text, want) in [
            ("0", 0.0),
            (" 1", 1.0),
            ("1\t\n", 1.0),
            ("\u{a0}1\u{2000}", 1.0),
            ("+1", 1.0),
            ("-0", 0.0),
            ("01", 1.0),
            ("1.0", 1.0),
            ("1e0", 1.0),
            ("1E-0", 1.0),
            (".5", 0.5),
            ("5.", 5.0),
            ("1_000", 1000.0),
            ("-inf", f64::NEG_INFINITY),
            ("Infinity", f64::INFINITY),
        ] {
            assert_eq!(read_number(&json!(text)), Reading::Read(want), "{text:?}");
        }
        assert!(
            matches!(read_number(&json!("NaN")), Reading::Read(x) if x.is_nan()),
            "nan is a float"
        );
    }

    #[test]
    fn number_refuses_other_strings() {
        for text in [
            "", " ", "1__0", "_1", "1_", "0x10", "1 0", "one", "\u{661}", "１", "1,0",
        ] {
            assert_eq!(read_number(&json!(text)), Reading::Refused, "{text:?}");
        }
    }

    #[test]
    fn number_refuses_null_arrays_and_objects() {
        assert_eq!(read_number(&json!(null)), Reading::Refused);
        assert_eq!(read_number(&json!([1])), Reading::Refused);
        assert_eq!(read_number(&json!({"a": 1})), Reading::Refused);
    }

    #[test]
    fn strings_are_read_only_as_themselves() {
        assert!(could_equal(&json!("staging"), &json!("staging")));
        assert!(!could_equal(&json!(" staging"), &json!("staging")));
        assert!(!could_equal(&json!("STAGING"), &json!("staging")));
        assert!(!could_equal(&json!(["staging"]), &json!("staging")));
    }

    #[test]
    fn null_is_read_from_null_and_the_string_null() {
        assert!(could_equal(&json!("null"), &json!(null)));
        assert!(could_equal(&json!(" null "), &json!(null)));
        assert!(!could_equal(&json!("none"), &json!(null)));
        assert!(!could_equal(&json!(0), &json!(null)));
    }

    #[test]
    fn containers_are_read_from_json_strings() {
        assert!(could_equal(&json!("{\"a\": 1}"), &json!({"a": 1})));
        assert!(could_equal(&json!(" [1, 2]"), &json!([1, 2])));
        assert!(!could_equal(&json!("{\"a\": 2}"), &json!({"a": 1})));
        assert!(!could_equal(&json!("a"), &json!({"a": 1})));
    }

    #[test]
    fn containers_the_strict_parser_refuses_are_unsure() {
        assert_eq!(
            read_container(&json!("{\"a\": 1, \"a\": 2}")),
            Reading::Unsure
        );
        assert_eq!(read_container(&json!("[NaN]")), Reading::Unsure);
        assert_eq!(read_container(&json!("not json")), Reading::Refused);
        assert!(could_equal(
            &json!("{\"a\": 2, \"a\": 1}"),
            &json!({"a": 1})
        ));
    }

    #[test]
    fn container_elements_are_read_leniently() {
        assert!(could_equal(
            &json!({"force": "yes"}),
            &json!({"force": true})
        ));
        assert!(could_equal(&json!(["1", "0"]), &json!([1, 0])));
    }

    #[test]
    fn arrays_compare_as_sets() {
        assert!(could_equal(&json!(["b", "a", "a"]), &json!(["a", "b"])));
        assert!(!could_equal(&json!(["a"]), &json!(["a", "b"])));
        assert!(!could_equal(&json!(["a", "c"]), &json!(["a"])));
    }

    #[test]
    fn objects_with_more_keys_may_be_models_that_ignore_them() {
        assert!(could_equal(
            &json!({"force": true, "note": "x"}),
            &json!({"force": true})
        ));
        assert!(!could_equal(&json!({"note": "x"}), &json!({"force": true})));
    }

    #[test]
    fn every_type_that_accepts_the_expected_value_is_tried() {
        // A boolean condition, an argument a `bool` parameter reads alike.
        assert!(could_equal(&json!("on"), &json!(true)));
        assert!(could_equal(&json!(1), &json!(true)));
        assert!(!could_equal(&json!("off"), &json!(true)));
        // A number condition: a numeric string, a boolean, a float.
        assert!(could_equal(&json!("0"), &json!(0)));
        assert!(could_equal(&json!(false), &json!(0)));
        assert!(could_equal(&json!(" 1e1 "), &json!(10)));
        assert!(!could_equal(&json!("1"), &json!(0)));
        // A string condition that an `int` parameter would read as a number.
        assert!(could_equal(&json!(5), &json!("5")));
        // What no type reads alike.
        assert!(!could_equal(&json!("yes"), &json!(2)));
        assert!(!could_equal(&json!(null), &json!(false)));
    }

    #[test]
    fn lookup_follows_objects_and_arrays() {
        let args = json!({"a": {"b": [10, 20]}, "x/y": 1, "t~": 2});
        assert_eq!(
            lookup(&args, &pointer("/a/b/1")),
            Lookup::Found(Cow::Owned(json!(20)))
        );
        assert_eq!(
            lookup(&args, &pointer("/x~1y")),
            Lookup::Found(Cow::Owned(json!(1)))
        );
        assert_eq!(
            lookup(&args, &pointer("/t~0")),
            Lookup::Found(Cow::Owned(json!(2)))
        );
        assert_eq!(
            lookup(&args, &pointer("")),
            Lookup::Found(Cow::Owned(args.clone()))
        );
    }

    #[test]
    fn lookup_of_what_is_not_there_is_absent() {
        let args = json!({"a": {"b": [10]}, "n": 3, "s": "plain"});
        assert_eq!(lookup(&args, &pointer("/missing")), Lookup::Absent);
        assert_eq!(lookup(&args, &pointer("/a/b/1")), Lookup::Absent);
        assert_eq!(lookup(&args, &pointer("/a/b/01")), Lookup::Absent);
        assert_eq!(lookup(&args, &pointer("/a/b/-")), Lookup::Absent);
        assert_eq!(lookup(&args, &pointer("/n/x")), Lookup::Absent);
        assert_eq!(lookup(&args, &pointer("/s/x")), Lookup::Absent);
    }

    #[test]
    fn lookup_walks_into_json_strings() {
        let args = json!({"options": "{\"force\": \"yes\", \"deep\": \"[1, 2]\"}"});
        assert_eq!(
            lookup(&args, &pointer("/options/force")),
            Lookup::Found(Cow::Owned(json!("yes")))
        );
        assert_eq!(
            lookup(&args, &pointer("/options/deep/1")),
            Lookup::Found(Cow::Owned(json!(2)))
        );
        assert_eq!(lookup(&args, &pointer("/options/other")), Lookup::Absent);
        let scalar = json!({"options": "true"});
        assert_eq!(lookup(&scalar, &pointer("/options/force")), Lookup::Absent);
    }

    #[test]
    fn lookup_through_json_the_strict_parser_refuses_is_unsure() {
        let args = json!({"options": "{\"force\": false, \"force\": true}"});
        assert_eq!(lookup(&args, &pointer("/options/force")), Lookup::Unsure);
    }
}
