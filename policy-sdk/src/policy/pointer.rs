//! JSON pointers (RFC 6901) of argument conditions, split once.
//!
//! `serde_json::Value::pointer` splits and unescapes its pointer on every
//! call, two allocations per token: for every request, for every argument
//! condition the request reaches. A rule's pointer never changes, so it is
//! split when the policy compiles, and a lookup allocates nothing.

use serde_json::Value;

/// A pointer into a request's `arguments`, as written and as tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pointer {
    text: String,
    /// Each reference token, `~1` and `~0` unescaped (in that order, as
    /// RFC 6901 section 4 says).
    tokens: Vec<String>,
}

impl Pointer {
    /// `None` unless `text` is empty (the whole value) or starts with `/`.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        if !(text.is_empty() || text.starts_with('/')) {
            return None;
        }
        let tokens = text
            .split('/')
            .skip(1)
            .map(|token| token.replace("~1", "/").replace("~0", "~"))
            .collect();
        Some(Self {
            text: text.to_owned(),
            tokens,
        })
    }

    /// The pointer as written in the policy.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    pub(crate) fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// What the pointer designates in `value`, exactly as
    /// `serde_json::Value::pointer` reads it (a test holds the two alike).
    pub(crate) fn get<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        self.tokens
            .iter()
            .try_fold(value, |target, token| match target {
                Value::Object(map) => map.get(token.as_str()),
                Value::Array(items) => array_index(token).and_then(|at| items.get(at)),
                _ => None,
            })
    }
}

/// An RFC 6901 array index: digits, no leading zero, no sign.
pub(crate) fn array_index(token: &str) -> Option<usize> {
    if token.is_empty()
        || !token.bytes().all(|b| b.is_ascii_digit())
        || (token.len() > 1 && token.starts_with('0'))
    {
        return None;
    }
    token.parse().ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// serde_json's own reading is the reference: the strict (allow)
    /// reading used it directly before pointers were split at compile time.
    #[test]
    fn a_split_pointer_reads_what_serde_json_reads() {
        let value = json!({
            "a": {"b": [10, {"c": "deep"}], "": "empty key", " ": "space"},
            "x/y": 1,
            "t~": 2,
            "~1": 3,
            "m~0n": 4,
            "é": {"ü": 5},
            "0": "zero key",
            "01": "leading zero key",
            "list": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
            "n": null,
        });
        let pointers = [
            "",
            "/",
            "/a",
            "/a/b",
            "/a/b/0",
            "/a/b/1",
            "/a/b/1/c",
            "/a/b/2",
            "/a/b/-",
            "/a/b/01",
            "/a/b/+1",
            "/a/b/-1",
            "/a/b/1.0",
            "/a/b/ 1",
            "/a/",
            "/a/ ",
            "/a//",
            "/x~1y",
            "/x/y",
            "/t~0",
            "/t~",
            "/~01",
            "/~1",
            "/m~00n",
            "/m~0n",
            "/~10",
            "/~2",
            "/é/ü",
            "/0",
            "/01",
            "/list/10",
            "/list/11",
            "/list/12",
            "/list/010",
            "/list/99999999999999999999999",
            "/n",
            "/n/x",
            "/missing",
            "/a/b/1/c/d",
        ];
        for text in pointers {
            let pointer = Pointer::parse(text).expect("a pointer");
            assert_eq!(pointer.get(&value), value.pointer(text), "{text:?}");
            assert_eq!(pointer.as_str(), text);
        }
    }

    #[test]
    fn only_empty_or_slash_led_text_is_a_pointer() {
        assert!(Pointer::parse("a/b").is_none());
        assert!(Pointer::parse("#/a").is_none());
        assert_eq!(Pointer::parse("").map(|p| p.tokens().len()), Some(0));
        assert_eq!(
            Pointer::parse("/a~1b/~0").map(|p| p.tokens().to_vec()),
            Some(vec!["a/b".to_owned(), "~".to_owned()])
        );
    }
}
