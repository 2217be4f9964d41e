//! Where the entries of each list lie in a body the skim has read.
//!
//! The skim (serde) reads a body strictly and finds its lists and the names
//! of their entries, but a serde visitor never learns where in the bytes a
//! value was. This walk finds that: it steps through the body's structure
//! byte by byte, placing values by the skim's own rule ([`Place`]: a list
//! is an array under a list key of the `result` of a message, the body or
//! an object in a batch), keys decoded by serde_json as the skim decodes
//! them, and gives each list's kind and entry spans in body order. It
//! validates nothing and runs only on a body the skim accepted;
//! [`super::ListCutter`] cuts only when its lists and the skim's agree in
//! number, kind and length.

use std::ops::Range;

use super::ListKind;
use super::skim::Place;

/// A list the walk found: its kind, and each entry's span in the body.
pub(super) type ListSpans = (ListKind, Vec<Range<usize>>);

/// Deeper than any body the skim accepts (serde_json stops at 128).
const MAX_DEPTH: usize = 256;

/// Each list's kind and entry spans, in body order; `None` when the body
/// is not the well-formed JSON the skim accepted.
pub(super) fn entry_spans(bytes: &[u8]) -> Option<Vec<ListSpans>> {
    let mut walk = Walk {
        bytes,
        at: 0,
        lists: Vec::new(),
    };
    walk.value(Place::Body, 0)?;
    walk.space();
    (walk.at == bytes.len()).then_some(walk.lists)
}

struct Walk<'a> {
    bytes: &'a [u8],
    at: usize,
    lists: Vec<ListSpans>,
}

impl Walk<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// Steps over JSON whitespace.
    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.at += 1;
        }
    }

    /// Steps over `byte`, which must come next.
    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    fn value(&mut self, place: Place, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.space();
        match self.peek()? {
            b'{' => self.object(place, depth),
            b'[' => self.array(place, depth),
            b'"' => self.string().map(|_| ()),
            _ => self.scalar(),
        }
    }

    /// A string, quotes included; its span.
    fn string(&mut self) -> Option<Range<usize>> {
        let start = self.at;
        self.expect(b'"')?;
        loop {
            let rest = self.bytes.get(self.at..)?;
            self.at += memchr::memchr2(b'"', b'\\', rest)?;
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Some(start..self.at);
                }
                // An escape is two bytes (`\u` takes its four digits as
                // plain bytes after).
                _ => self.at += 2,
            }
        }
    }

    /// A number, `true`, `false` or `null`: up to the next delimiter.
    fn scalar(&mut self) -> Option<()> {
        let start = self.at;
        while let Some(byte) = self.peek() {
            if matches!(byte, b',' | b']' | b'}' | b' ' | b'\n' | b'\r' | b'\t') {
                break;
            }
            self.at += 1;
        }
        (self.at > start).then_some(())
    }

    fn object(&mut self, place: Place, depth: usize) -> Option<()> {
        self.expect(b'{')?;
        self.space();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.space();
            let key = self.string()?;
            let member = if place.leads_to_lists() {
                place.member(&key_text(self.bytes.get(key)?)?)
            } else {
                Place::Elsewhere
            };
            self.space();
            self.expect(b':')?;
            self.value(member, depth + 1)?;
            self.space();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, place: Place, depth: usize) -> Option<()> {
        self.expect(b'[')?;
        let items = place.items();
        let list = match place {
            Place::UnderListKey(kind) => Some(kind),
            _ => None,
        };
        let mut spans = Vec::new();
        self.space();
        if self.peek()? == b']' {
            self.at += 1;
        } else {
            loop {
                self.space();
                let start = self.at;
                self.value(items, depth + 1)?;
                if list.is_some() {
                    spans.push(start..self.at);
                }
                self.space();
                match self.peek()? {
                    b',' => self.at += 1,
                    b']' => {
                        self.at += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        if let Some(kind) = list {
            self.lists.push((kind, spans));
        }
        Some(())
    }
}

/// A key's text, decoded by serde_json as the skim's keys are.
fn key_text(quoted: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    match quoted
        .strip_prefix(b"\"")
        .and_then(|rest| rest.strip_suffix(b"\""))
    {
        Some(plain) if !plain.contains(&b'\\') => std::str::from_utf8(plain)
            .ok()
            .map(std::borrow::Cow::Borrowed),
        _ => serde_json::from_slice::<String>(quoted)
            .ok()
            .map(std::borrow::Cow::Owned),
    }
}
