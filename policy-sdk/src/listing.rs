//! Cutting list results to what a caller could use, in every response body
//! Warden lets through on an MCP endpoint.
//!
//! A response is judged by what it carries, not by the request Warden
//! thinks it answers: a server may deliver a `tools/list` result on the
//! stream of another request whose id aliases it (the MCP Python SDK routes
//! by `str(id)`), send it on the GET stream, or replay it when a client
//! resumes a stream with `Last-Event-ID`. So every JSON-RPC message in a
//! body, JSON or Server-Sent Events, is read, and any `result` that holds
//! `tools`, `prompts`, `resources` or `resourceTemplates` as an array has
//! that array cut to the entries `CompiledPolicy::could_allow` accepts for
//! the caller (an entry without a usable name goes too). The four result
//! keys are the same in every MCP revision, and none of them is a top-level
//! result member of any other method.
//!
//! Messages without such a list pass byte for byte. What cannot be read
//! fails closed: an oversized body or event, a body or event that is not
//! strict JSON (duplicate keys included, as for requests). The caller then
//! gets [`failure_body`] in its place.

use std::borrow::Cow;

use serde_json::{Map, Value, json};

use crate::identity::Identity;
use crate::json::{JsonLimits, parse_strict};
use crate::mcp::MethodFacts;
use crate::policy::CompiledPolicy;

mod skim;
mod spans;

/// JSON-RPC 2.0 "internal error", used when a list cannot be filtered.
const INTERNAL_ERROR: i64 = -32603;

/// Which list a result holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
    ResourceTemplates,
}

impl ListKind {
    /// Every kind, in the order results are cut.
    pub const ALL: [Self; 4] = [
        Self::Tools,
        Self::Prompts,
        Self::Resources,
        Self::ResourceTemplates,
    ];

    /// The list a request method asks for, if it is one of the four.
    pub fn for_method(method: &str) -> Option<Self> {
        MethodFacts::named(method)?.list.map(|list| list.kind)
    }

    /// The member of `result` holding the entries.
    pub fn result_key(self) -> &'static str {
        self.facts().result_key
    }

    /// The member of an entry naming it.
    pub fn entry_key(self) -> &'static str {
        self.facts().entry_key
    }
}

/// Counts for the audit line: one list found in a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListSummary {
    pub kind: ListKind,
    /// Entries left.
    pub kept: usize,
    /// Names (tools, prompts), URIs (resources) or URI templates removed, in
    /// response order; `<unnamed>` for an entry without a usable name.
    pub removed: Vec<String>,
}

/// Placeholder in `ListSummary::removed` for an entry without a string name.
pub const UNNAMED: &str = "<unnamed>";

/// Why a response could not be read for lists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("response body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("an event of the response stream is larger than the limit of {limit} bytes")]
    EventTooLarge { limit: usize },
    #[error("response is not JSON: {0}")]
    NotJson(String),
    #[error("response event is not JSON: {0}")]
    EventNotJson(String),
}

/// A body with every list result cut for one caller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cut {
    /// The bytes to send on; `None` when they are the bytes read.
    pub body: Option<Vec<u8>>,
    /// Every list found, cut or not.
    pub lists: Vec<ListSummary>,
}

/// Reads response bodies for one caller.
#[derive(Clone, Copy)]
pub struct ListCutter<'a> {
    pub policy: &'a CompiledPolicy,
    pub identity: &'a Identity,
    /// Bounds every JSON body and every event read.
    pub limits: JsonLimits,
}

impl ListCutter<'_> {
    /// Cuts a whole `application/json` body: one message or a batch.
    pub fn json_body(&self, body: &[u8]) -> Result<Cut, ListError> {
        self.whole_body(body, Self::read)
    }

    /// [`json_body`](Self::json_body) the way every body was cut before
    /// the skim cut lists: parsed into a tree, cut, written anew. Still the
    /// way for what the skim refuses; the reference the tests and the
    /// `list_cutter` fuzz target hold the skim's cut to.
    #[cfg(any(test, feature = "testing"))]
    pub fn json_body_by_tree(&self, body: &[u8]) -> Result<Cut, ListError> {
        self.whole_body(body, Self::read_tree)
    }

    /// A whole `application/json` body, read by `read` unless it is over
    /// the size limit or carries no message.
    fn whole_body(
        &self,
        body: &[u8],
        read: impl FnOnce(&Self, &[u8]) -> Result<Cut, String>,
    ) -> Result<Cut, ListError> {
        if body.len() > self.limits.max_bytes {
            return Err(ListError::TooLarge {
                limit: self.limits.max_bytes,
            });
        }
        // An empty body carries no message (a 202, a DELETE's answer).
        if body.trim_ascii().is_empty() {
            return Ok(Cut::default());
        }
        read(self, body).map_err(ListError::NotJson)
    }

    /// Cuts one body or event's data. The skim reads it strictly without
    /// building it: untouched when it holds no list, else its lists' cut
    /// entries are left out of the bytes. What the skim refuses is read
    /// whole, which gives the error (or, should the two readers ever part,
    /// cuts the tree).
    fn read(&self, bytes: &[u8]) -> Result<Cut, String> {
        if let Some(lists) = skim::survey(bytes, self.limits) {
            if lists.is_empty() {
                return Ok(Cut::default());
            }
            if let Some(cut) = self.cut_entries(bytes, lists) {
                return Ok(cut);
            }
        }
        self.read_tree(bytes)
    }

    /// Reads `bytes` whole into a tree and cuts it.
    fn read_tree(&self, bytes: &[u8]) -> Result<Cut, String> {
        let value = parse_strict(bytes, self.limits).map_err(|e| e.to_string())?;
        Ok(self.cut_value(value))
    }

    /// Cuts the lists the skim found in `bytes`: each list's bytes from its
    /// first entry to its last are replaced by the kept entries, joined by
    /// commas; everything else goes byte for byte. The summaries come in
    /// the order [`cut_value`](Self::cut_value) gives (messages in order,
    /// then kinds in [`ListKind::ALL`] order). `None` when the walk that
    /// finds the entries' bytes ([`spans`]) does not find the lists the
    /// skim found, kind for kind and entry for entry (never, for a body the
    /// skim accepts).
    fn cut_entries(&self, bytes: &[u8], lists: Vec<skim::FoundList<'_>>) -> Option<Cut> {
        let spans = spans::entry_spans(bytes)?;
        if spans.len() != lists.len()
            || spans
                .iter()
                .zip(&lists)
                .any(|((kind, spans), list)| *kind != list.kind || spans.len() != list.names.len())
        {
            return None;
        }
        let mut summaries = Vec::with_capacity(lists.len());
        let mut out: Option<Vec<u8>> = None;
        let mut copied = 0;
        for (list, (_, spans)) in lists.into_iter().zip(spans) {
            let mut kept = Vec::with_capacity(spans.len());
            let mut removed = Vec::new();
            for (name, span) in list.names.iter().zip(&spans) {
                match name.as_deref() {
                    Some(name) if self.policy.could_allow(self.identity, list.kind.item(name)) => {
                        kept.push(span.clone());
                    }
                    name => removed.push(name.unwrap_or(UNNAMED).to_owned()),
                }
            }
            if let (false, Some(first), Some(last)) =
                (removed.is_empty(), spans.first(), spans.last())
            {
                let out = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
                out.extend_from_slice(bytes.get(copied..first.start)?);
                for (n, span) in kept.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(bytes.get(span.clone())?);
                }
                copied = last.end;
            }
            let order = ListKind::ALL.iter().position(|kind| *kind == list.kind);
            let summary = ListSummary {
                kind: list.kind,
                kept: kept.len(),
                removed,
            };
            summaries.push(((list.message, order), summary));
        }
        if let Some(out) = &mut out {
            out.extend_from_slice(bytes.get(copied..)?);
        }
        summaries.sort_by_key(|(order, _)| *order);
        Some(Cut {
            body: out,
            lists: summaries.into_iter().map(|(_, summary)| summary).collect(),
        })
    }

    /// Cuts every list result in one JSON value (a message or a batch).
    fn cut_value(&self, mut value: Value) -> Cut {
        let mut lists = Vec::new();
        let changed = match &mut value {
            Value::Object(message) => self.cut_message(message, &mut lists),
            Value::Array(batch) => batch.iter_mut().fold(false, |changed, item| match item {
                Value::Object(message) => self.cut_message(message, &mut lists) || changed,
                _ => changed,
            }),
            _ => false,
        };
        Cut {
            body: changed.then(|| value.to_string().into_bytes()),
            lists,
        }
    }

    /// Cuts the lists of one message's `result` (whatever else the message
    /// holds: a client that reads `result` of a message that also has a
    /// `method` must still see a cut list). `true` when an entry went.
    fn cut_message(&self, message: &mut Map<String, Value>, lists: &mut Vec<ListSummary>) -> bool {
        let Some(Value::Object(result)) = message.get_mut("result") else {
            return false;
        };
        let mut changed = false;
        for kind in ListKind::ALL {
            let Some(Value::Array(entries)) = result.get_mut(kind.result_key()) else {
                continue;
            };
            let mut summary = ListSummary {
                kind,
                kept: 0,
                removed: Vec::new(),
            };
            let entry_key = kind.entry_key();
            entries.retain(|entry| {
                let name = entry.get(entry_key).and_then(Value::as_str);
                let keep = name
                    .is_some_and(|name| self.policy.could_allow(self.identity, kind.item(name)));
                if keep {
                    summary.kept += 1;
                } else {
                    summary
                        .removed
                        .push(name.map_or_else(|| UNNAMED.to_owned(), str::to_owned));
                }
                keep
            });
            changed |= !summary.removed.is_empty();
            lists.push(summary);
        }
        changed
    }

    /// Cuts one complete event (its lines, without the blank line ending
    /// it) into `out`.
    fn event(
        &self,
        lines: &[Line<'_>],
        out: &mut Vec<u8>,
        lists: &mut Vec<ListSummary>,
    ) -> Result<(), ListError> {
        let copy = |out: &mut Vec<u8>| {
            for line in lines {
                out.extend_from_slice(line.content);
                out.extend_from_slice(line.terminator);
            }
        };
        // Borrowed when the event has one data line, as a server's
        // message event has.
        let mut data: Option<Cow<'_, [u8]>> = None;
        for line in lines {
            if let Some(value) = line.data_value() {
                match &mut data {
                    None => data = Some(Cow::Borrowed(value)),
                    Some(buffer) => {
                        let buffer = buffer.to_mut();
                        buffer.push(b'\n');
                        buffer.extend_from_slice(value);
                    }
                }
            }
        }
        // No data, or only whitespace (a priming event): no message.
        let Some(data) = data.filter(|d| !d.trim_ascii().is_empty()) else {
            copy(out);
            return Ok(());
        };
        if data.len() > self.limits.max_bytes {
            return Err(ListError::EventTooLarge {
                limit: self.limits.max_bytes,
            });
        }
        let cut = self.read(&data).map_err(ListError::EventNotJson)?;
        lists.extend(cut.lists);
        let Some(json) = cut.body else {
            copy(out);
            return Ok(());
        };
        // The message again as one `data` line where its first was; the
        // event's other fields stay.
        let mut written = false;
        for line in lines {
            if line.data_value().is_none() {
                out.extend_from_slice(line.content);
            } else if !written {
                written = true;
                // The cut keeps the data's own line breaks (between JSON
                // tokens, where its data lines joined): one data line per
                // line, which the client joins back the same.
                let mut parts = json.split(|&b| b == b'\n');
                if let Some(part) = parts.next() {
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(part);
                }
                for part in parts {
                    out.extend_from_slice(line.terminator);
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(part);
                }
            } else {
                continue;
            }
            out.extend_from_slice(line.terminator);
        }
        Ok(())
    }
}

/// A `text/event-stream` body read as it arrives: each chunk gives back its
/// complete events, cut, and keeps the unfinished rest for the next.
#[derive(Debug, Default)]
pub struct EventStream {
    /// Bytes after the last complete event.
    pending: Vec<u8>,
    /// The start of the stream was seen (a byte order mark may lead it).
    started: bool,
    /// The last byte sent was a CR: an LF sent next would join it.
    sent_cr: bool,
}

/// What was left of an event stream when it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamEnd {
    /// An unfinished event carrying data was dropped: a conforming client
    /// does not dispatch it, a lenient one might have read it uncut.
    pub dropped_data: bool,
}

impl EventStream {
    /// Takes the next chunk and returns the bytes to send in its place:
    /// every event completed by it, cut. `last`: no more bytes follow. An
    /// event longer than the cutter's byte limit is refused.
    pub fn push(
        &mut self,
        cutter: &ListCutter<'_>,
        chunk: &[u8],
        last: bool,
    ) -> Result<Cut, ListError> {
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(self.pending.len());
        if !self.started {
            // A leading byte order mark is not part of the first line; wait
            // until it is certain whether one is there.
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            if !last && self.pending.len() < BOM.len() && BOM.starts_with(&self.pending) {
                return Ok(Cut {
                    body: Some(Vec::new()),
                    lists: Vec::new(),
                });
            }
            self.started = true;
            if let Some(rest) = self.pending.strip_prefix(BOM) {
                out.extend_from_slice(BOM);
                self.pending = rest.to_vec();
            }
        }
        let mut lists = Vec::new();
        let mut event: Vec<Line<'_>> = Vec::new();
        let mut consumed = 0;
        let mut rest = self.pending.as_slice();
        while let Some((line, after)) = next_line(rest) {
            // A CR at the end of what has arrived may be the first half of
            // a CRLF: the line is complete once the next byte is known.
            if line.terminator == b"\r" && after.is_empty() && !last {
                break;
            }
            rest = after;
            if !line.content.is_empty() {
                event.push(line);
                continue;
            }
            // A blank line ends the event.
            cutter.event(&event, &mut out, &mut lists)?;
            // A rewritten event can end in a line ended by a lone CR (the
            // data lines after it merged into the first): an LF ending the
            // event would then read as the second half of a CRLF, and the
            // event would run on into the next at the client. It is ended
            // by a CR instead. An event sent as it came cannot end so: its
            // CR and LF were read as one CRLF.
            if line.terminator == b"\n" && out.last().map_or(self.sent_cr, |&b| b == b'\r') {
                out.push(b'\r');
            } else {
                out.extend_from_slice(line.terminator);
            }
            event.clear();
            consumed = self.pending.len() - rest.len();
        }
        self.pending.drain(..consumed);
        if let Some(&sent) = out.last() {
            self.sent_cr = sent == b'\r';
        }
        if self.pending.len() > cutter.limits.max_bytes {
            return Err(ListError::EventTooLarge {
                limit: cutter.limits.max_bytes,
            });
        }
        // Whole events nothing was cut from go as they came.
        let body = (out != chunk).then_some(out);
        Ok(Cut { body, lists })
    }

    /// The stream ended: the unfinished rest is never sent (no client
    /// dispatches an event without its blank line).
    pub fn finish(&mut self) -> StreamEnd {
        let pending = std::mem::take(&mut self.pending);
        let mut dropped_data = false;
        let mut rest = pending.as_slice();
        while let Some((line, after)) = next_line(rest) {
            dropped_data |= line.data_value().is_some();
            rest = after;
        }
        // An unfinished last line naming the data field.
        dropped_data |= rest.starts_with(b"data");
        StreamEnd { dropped_data }
    }
}

/// The body to send instead when a response could not be read (fail
/// closed): a JSON-RPC error response (code -32603, `data.reason`) carrying
/// `request_id` (`null` when the response answers no known request), framed
/// as JSON or as one SSE event.
pub fn failure_body(request_id: &Value, event_stream: bool, reason: &str) -> Vec<u8> {
    let message = json!({
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {
            "code": INTERNAL_ERROR,
            "message": "the response could not be filtered for this caller",
            "data": { "reason": reason },
        },
    })
    .to_string();
    if event_stream {
        format!("event: message\ndata: {message}\n\n").into_bytes()
    } else {
        message.into_bytes()
    }
}

/// One line of an event stream.
struct Line<'a> {
    content: &'a [u8],
    /// `\n`, `\r\n` or `\r`.
    terminator: &'a [u8],
}

impl<'a> Line<'a> {
    /// The value of a `data` field line (one space after the colon
    /// stripped), or `None` for other fields and comments.
    fn data_value(&self) -> Option<&'a [u8]> {
        let value = self.content.strip_prefix(b"data")?;
        if value.is_empty() {
            // `data` alone: the field with an empty value.
            return Some(value);
        }
        let value = value.strip_prefix(b":")?;
        Some(value.strip_prefix(b" ").unwrap_or(value))
    }
}

/// The next complete line of `text` and what follows it; `None` when no line
/// end is left (the remainder is an unfinished line).
fn next_line(text: &[u8]) -> Option<(Line<'_>, &[u8])> {
    let end = memchr::memchr2(b'\n', b'\r', text)?;
    let (content, rest) = text.split_at_checked(end)?;
    let terminator_len = match rest {
        [b'\r', b'\n', ..] => 2,
        _ => 1,
    };
    let (terminator, rest) = rest.split_at_checked(terminator_len)?;
    Some((
        Line {
            content,
            terminator,
        },
        rest,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Defaults, RuleSource};

    const POLICY: &str = r#"
- id: search
  effect: allow
  owner: docs
  tools: [search_docs]
- id: read-public
  effect: allow
  owner: platform
  tools: [read_file]
  arguments:
    - {pointer: /path, path_prefix: /srv/public/}
- id: public-docs
  effect: allow
  owner: docs
  resource_prefixes: ["docs://public/"]
- id: greet
  effect: allow
  owner: docs
  prompts: [greet]
"#;

    fn policy() -> CompiledPolicy {
        let rules: Vec<RuleSource> = serde_yaml_ng::from_str(POLICY).unwrap();
        CompiledPolicy::compile(&rules, &Defaults::default()).unwrap()
    }

    fn bob() -> Identity {
        crate::testing::direct(crate::testing::bob())
    }

    const LIMITS: JsonLimits = JsonLimits {
        max_bytes: 1 << 20,
        max_depth: 64,
    };

    /// Cuts a JSON body for bob; the bytes sent on and the lists found.
    fn json_cut(body: &str, limits: JsonLimits) -> Result<(String, Vec<ListSummary>), ListError> {
        let (policy, identity) = (policy(), bob());
        let cutter = ListCutter {
            policy: &policy,
            identity: &identity,
            limits,
        };
        let cut = cutter.json_body(body.as_bytes())?;
        let sent = cut
            .body
            .map_or_else(|| body.to_owned(), |b| String::from_utf8(b).unwrap());
        Ok((sent, cut.lists))
    }

    /// Feeds an event stream in `chunks` for bob and ends it; what the
    /// client receives, the lists found and whether an unfinished event
    /// carrying data was dropped.
    fn sse_cut(chunks: &[&[u8]]) -> Result<(Vec<u8>, Vec<ListSummary>, bool), ListError> {
        let (policy, identity) = (policy(), bob());
        let cutter = ListCutter {
            policy: &policy,
            identity: &identity,
            limits: LIMITS,
        };
        let mut stream = EventStream::default();
        let (mut sent, mut lists) = (Vec::new(), Vec::new());
        for (n, chunk) in chunks.iter().enumerate() {
            let cut = stream.push(&cutter, chunk, n + 1 == chunks.len())?;
            sent.extend(cut.body.unwrap_or_else(|| chunk.to_vec()));
            lists.extend(cut.lists);
        }
        Ok((sent, lists, stream.finish().dropped_data))
    }

    fn sse(body: &str) -> (String, Vec<ListSummary>, bool) {
        let (sent, lists, dropped) = sse_cut(&[body.as_bytes()]).unwrap();
        (String::from_utf8(sent).unwrap(), lists, dropped)
    }

    fn tools_response(id: Value) -> Value {
        json!({
            "jsonrpc": "2.0",
            "id": id,
            "result": {
                "tools": [
                    {"name": "search_docs", "inputSchema": {"type": "object"}},
                    {"name": "delete_repo", "inputSchema": {"type": "object"}},
                    {"name": "read_file", "inputSchema": {"type": "object"}},
                    {"title": "no name"},
                    {"name": 7},
                ],
                "nextCursor": "page-2",
                "_meta": {"x": 1},
            }
        })
    }

    fn names(message: &Value, kind: ListKind) -> Vec<String> {
        message["result"][kind.result_key()]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e[kind.entry_key()].as_str().unwrap().to_owned())
            .collect()
    }

    /// The skim's cut and the tree's agree: the same error or the same
    /// lists, and bodies that read as the same JSON (the skim keeps the
    /// body's own layout and member order, the tree writes it anew).
    fn cuts_agree(body: &[u8], limits: JsonLimits) {
        let (policy, identity) = (policy(), bob());
        let cutter = ListCutter {
            policy: &policy,
            identity: &identity,
            limits,
        };
        let shown = String::from_utf8_lossy(body);
        // A body the skim reads is cut by its entries' bytes, never left to
        // the tree because the walk lost its way.
        if let Some(lists) = skim::survey(body, limits)
            && !lists.is_empty()
        {
            assert!(cutter.cut_entries(body, lists).is_some(), "{shown}");
        }
        match (cutter.json_body(body), cutter.json_body_by_tree(body)) {
            (Ok(skimmed), Ok(tree)) => {
                assert_eq!(skimmed.lists, tree.lists, "{shown}");
                assert_eq!(skimmed.body.is_some(), tree.body.is_some(), "{shown}");
                if let (Some(skimmed), Some(tree)) = (skimmed.body, tree.body) {
                    let read = |bytes: &[u8]| parse_strict(bytes, LIMITS).unwrap();
                    assert_eq!(read(&skimmed), read(&tree), "{shown}");
                }
            }
            (Err(skimmed), Err(tree)) => assert_eq!(skimmed, tree, "{shown}"),
            (skimmed, tree) => panic!("{shown}: skim {skimmed:?}, tree {tree:?}"),
        }
    }

    #[test]
    fn the_skims_cut_reads_as_the_trees() {
        let tools = tools_response(json!(1)).to_string();
        let pretty = serde_json::to_string_pretty(&tools_response(json!(2))).unwrap();
        let bodies = [
            tools.clone(),
            pretty,
            format!("[{tools},{{\"id\":3,\"result\":{{}}}},7,{tools}]"),
            // Kinds out of the order summaries come in, two in one result.
            r#"{"id":1,"result":{"resources":[{"uri":"docs://public/a"},{"uri":"file:///etc"}],"tools":[{"name":"search_docs"},{"name":"x"}]}}"#.to_owned(),
            r#"{"id":1,"result":{"resourceTemplates":[{"uriTemplate":"docs://public/{p}"},{"uriTemplate":"db://{t}"}],"prompts":[{"name":"greet"},{"name":"leak"}]}}"#.to_owned(),
            // Escaped names read as they decode; whitespace everywhere.
            " { \"id\" : 1 , \"result\" : { \"tools\" : [ { \"name\" : \"search\\u005fdocs\" } ,\n\t{ \"name\" : \"del\\u0065te\" } , { \"name\":\"read_file\" } ] } } ".to_owned(),
            // Keys spelled with escapes; strings holding quotes and
            // backslashes; CRLF between tokens.
            r#"{"id":1,"res\u0075lt":{"t\u006fols":[{"name":"x\"]}"},{"name":"search_docs","d":"\\"}],"\u0072esources":[]}}"#.to_owned(),
            "{\"id\":1,\r\n\"result\"\r\n:\r\n{\"tools\":[\r\n{\"name\":\"a\"}\r\n,\r\n{\"name\":\"search_docs\"}\r\n]}}".to_owned(),
            // Everything cut, nothing cut, an empty list, not an array.
            r#"{"id":1,"result":{"tools":[{"name":"a"},{"name":"b"}]}}"#.to_owned(),
            r#"{"id":1,"result":{"tools":[{"name":"search_docs"}]}}"#.to_owned(),
            r#"{"id":1,"result":{"tools":[]}}"#.to_owned(),
            r#"{"id":1,"result":{"tools":{"name":"x"}}}"#.to_owned(),
            // Entries of every JSON type; a list inside an entry stays.
            r#"{"id":1,"result":{"tools":[1,"x",null,true,[{"name":"x"}],{"name":"search_docs","result":{"tools":[{"name":"y"}]}}]}}"#.to_owned(),
            // The naming member nested, or not a string: no name.
            r#"{"id":1,"result":{"tools":[{"meta":{"name":"search_docs"}},{"name":["search_docs"]},{"name":null}]}}"#.to_owned(),
            // Refused: a duplicate key inside an entry, or its name twice;
            // an entry nested too deep; trailing data.
            r#"{"id":1,"result":{"tools":[{"name":"search_docs","a":1,"a":2}]}}"#.to_owned(),
            r#"{"id":1,"result":{"tools":[{"name":"x","n\u0061me":"search_docs"}]}}"#.to_owned(),
            format!(r#"{{"id":1,"result":{{"tools":[{}{}]}}}}"#, "[".repeat(70), "]".repeat(70)),
            format!("{tools} {tools}"),
        ];
        for body in bodies {
            cuts_agree(body.as_bytes(), LIMITS);
        }
        // Past serde_json's own nesting bound (128) with a configured depth
        // above it: an entry is read in the body's pass, so both refuse.
        let deep = JsonLimits {
            max_depth: 300,
            ..LIMITS
        };
        for nesting in [100, 125, 130, 200] {
            let body = format!(
                r#"{{"id":1,"result":{{"tools":[{{"name":"search_docs"}},{}{}]}}}}"#,
                "[".repeat(nesting),
                "]".repeat(nesting)
            );
            cuts_agree(body.as_bytes(), deep);
        }
    }

    /// Every file of JSONTestSuite as a list, as an entry of one, and as
    /// an entry's name: the skim's cut and the tree's agree.
    #[test]
    fn the_skims_cut_agrees_with_the_trees_on_json_test_suite() {
        use crate::json::{json_test_suite, spliced};
        for bytes in json_test_suite() {
            let as_list = spliced(r#"{"id":1,"result":{"tools":"#, &bytes, "}}");
            let as_entry = spliced(
                r#"{"id":1,"result":{"tools":[{"name":"search_docs"},"#,
                &bytes,
                r#",{"name":"x"}]}}"#,
            );
            let as_name = spliced(
                r#"{"id":1,"result":{"prompts":[{"name":"greet"},{"name":"#,
                &bytes,
                "}]}}",
            );
            for body in [as_list, as_entry, as_name] {
                cuts_agree(&body, LIMITS);
            }
        }
    }

    #[test]
    fn list_kinds_map_methods_and_keys() {
        for (method, kind) in [
            ("tools/list", ListKind::Tools),
            ("prompts/list", ListKind::Prompts),
            ("resources/list", ListKind::Resources),
            ("resources/templates/list", ListKind::ResourceTemplates),
        ] {
            assert_eq!(ListKind::for_method(method), Some(kind));
            assert_eq!(kind.facts().kind, kind);
        }
        assert_eq!(ListKind::for_method("tools/call"), None);
        assert_eq!(ListKind::Tools.result_key(), "tools");
        assert_eq!(
            ListKind::ResourceTemplates.result_key(),
            "resourceTemplates"
        );
        assert_eq!(ListKind::ResourceTemplates.entry_key(), "uriTemplate");
    }

    #[test]
    fn json_tools_are_cut_and_pagination_kept() {
        let (out, lists) = json_cut(&tools_response(json!(3)).to_string(), LIMITS).unwrap();
        let out: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(names(&out, ListKind::Tools), ["search_docs", "read_file"]);
        assert_eq!(out["id"], json!(3));
        assert_eq!(out["result"]["nextCursor"], "page-2");
        assert_eq!(out["result"]["_meta"], json!({"x": 1}));
        assert_eq!(
            out["result"]["tools"][0]["inputSchema"],
            json!({"type": "object"})
        );
        assert_eq!(
            lists,
            [ListSummary {
                kind: ListKind::Tools,
                kept: 2,
                removed: vec!["delete_repo".into(), UNNAMED.into(), UNNAMED.into()],
            }]
        );
    }

    #[test]
    fn resources_templates_and_prompts_are_cut_by_their_keys() {
        let resources = json!({"jsonrpc": "2.0", "id": "r", "result": {"resources": [
            {"uri": "docs://public/intro", "name": "intro"},
            {"uri": "docs://internal/plan", "name": "plan"},
        ]}});
        let (out, lists) = json_cut(&resources.to_string(), LIMITS).unwrap();
        let out: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(names(&out, ListKind::Resources), ["docs://public/intro"]);
        assert_eq!(lists[0].removed, ["docs://internal/plan"]);

        let templates = json!({"jsonrpc": "2.0", "id": 1, "result": {"resourceTemplates": [
            {"uriTemplate": "docs://internal/{id}", "name": "internal"},
            {"uriTemplate": "docs://public/{id}", "name": "public"},
        ]}});
        let (out, _) = json_cut(&templates.to_string(), LIMITS).unwrap();
        let out: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            names(&out, ListKind::ResourceTemplates),
            ["docs://public/{id}"]
        );

        let prompts = json!({"jsonrpc": "2.0", "id": 1, "result": {"prompts": [
            {"name": "greet"}, {"name": "search_docs"},
        ]}});
        let (out, _) = json_cut(&prompts.to_string(), LIMITS).unwrap();
        let out: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(names(&out, ListKind::Prompts), ["greet"]);
    }

    #[test]
    fn messages_without_lists_pass_byte_for_byte() {
        for body in [
            r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"no"}}"#,
            r#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"1.0000"}]}}"#,
            r#"{"jsonrpc":"2.0","id":3,"result":{"tools":{"listChanged":true}}}"#,
            r#"{"jsonrpc":"2.0","id":3,"result":{"capabilities":{"tools":[{"name":"x"}]}}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
            r#"[{"jsonrpc":"2.0","id":1,"result":{}}, 7]"#,
            "  ",
            "",
        ] {
            let (policy, identity) = (policy(), bob());
            let cutter = ListCutter {
                policy: &policy,
                identity: &identity,
                limits: LIMITS,
            };
            assert_eq!(
                cutter.json_body(body.as_bytes()).unwrap().body,
                None,
                "{body}"
            );
        }
        // A list with nothing to cut is found but not rewritten.
        let kept = r#"{"jsonrpc":"2.0","id":3,"result":{"prompts":[{"name":"greet"}]}}"#;
        let (out, lists) = json_cut(kept, LIMITS).unwrap();
        assert_eq!(out, kept);
        assert_eq!(lists[0].kept, 1);
    }

    #[test]
    fn unreadable_json_bodies_fail_closed() {
        assert!(matches!(
            json_cut("{\"id\":3,", LIMITS),
            Err(ListError::NotJson(_))
        ));
        let twice =
            r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[],"tools":[{"name":"delete_repo"}]}}"#;
        assert!(matches!(
            json_cut(twice, LIMITS),
            Err(ListError::NotJson(_))
        ));
        let body = tools_response(json!(3)).to_string();
        let tight = JsonLimits {
            max_bytes: body.len() - 1,
            ..LIMITS
        };
        assert_eq!(
            json_cut(&body, tight).unwrap_err(),
            ListError::TooLarge {
                limit: body.len() - 1
            }
        );
        let shallow = JsonLimits {
            max_depth: 3,
            ..LIMITS
        };
        assert!(matches!(
            json_cut(&body, shallow),
            Err(ListError::NotJson(_))
        ));
    }

    #[test]
    fn sse_events_are_cut_and_the_rest_passes() {
        let notification = ": keep-alive\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1}}\n\n";
        let other = "data: {\"jsonrpc\":\"2.0\",\"id\":99,\"result\":{\"tools\":[{\"name\":\"delete_repo\"}]}}\n\n";
        let response = format!(
            "id: ev-7\nevent: message\nretry: 1000\ndata: {}\n\n",
            tools_response(json!(3))
        );
        let (out, lists, dropped) = sse(&format!("{notification}{other}{response}"));
        assert!(!dropped);
        let rest = out.strip_prefix(notification).unwrap();
        // Another request's answer is cut too: data, not requests. The
        // rest of the message goes as it came.
        let (first, rewritten) = rest.split_once("\n\n").unwrap();
        assert_eq!(
            first,
            "data: {\"jsonrpc\":\"2.0\",\"id\":99,\"result\":{\"tools\":[]}}"
        );
        assert!(rewritten.starts_with("id: ev-7\nevent: message\nretry: 1000\ndata: {"));
        assert!(rewritten.ends_with("}\n\n"));
        assert_eq!(rewritten.matches('\n').count(), 5);
        assert_eq!(lists.len(), 2);
        assert_eq!(lists[1].kept, 2);
        assert_eq!(lists[1].removed, ["delete_repo", UNNAMED, UNNAMED]);
    }

    #[test]
    fn sse_line_ends_and_byte_order_mark_are_kept() {
        let body = format!(
            "event: message\r\ndata: {}\r\n\r\n: done\r\n",
            tools_response(json!(3))
        );
        let (out, lists, _) = sse(&body);
        assert!(out.starts_with("event: message\r\ndata: {"));
        // The comment after the last event is an unfinished event: dropped.
        assert!(out.ends_with("}\r\n\r\n"), "{out}");
        assert_eq!(lists[0].kept, 2);

        let body = format!("\u{feff}data:{}\r\r", tools_response(json!(3)));
        let (out, lists, dropped) = sse(&body);
        assert!(out.starts_with("\u{feff}data: {"));
        assert!(out.ends_with("}\r\r"));
        assert_eq!(lists[0].kept, 2);
        assert!(!dropped);
    }

    #[test]
    fn sse_multi_line_data_is_cut_where_it_lies_and_joins_back() {
        let pretty = serde_json::to_string_pretty(&tools_response(json!("a"))).unwrap();
        let data: String = pretty.lines().map(|l| format!("data:{l}\n")).collect();
        let (out, lists, _) = sse(&format!("id: 1\n{data}\n"));
        let (event, rest) = out.split_once("\n\n").unwrap();
        assert_eq!(rest, "");
        let mut lines = event.split('\n');
        assert_eq!(lines.next(), Some("id: 1"));
        // As a client reads the event: its data lines joined by LF.
        let joined: Vec<&str> = lines
            .map(|line| line.strip_prefix("data: ").unwrap())
            .collect();
        assert!(joined.len() > 1, "{out}");
        let message: Value = serde_json::from_str(&joined.join("\n")).unwrap();
        assert_eq!(
            names(&message, ListKind::Tools),
            ["search_docs", "read_file"]
        );
        assert_eq!(lists[0].kept, 2);
    }

    #[test]
    fn sse_cut_at_every_byte_reads_as_whole() {
        let body = format!(
            "\u{feff}: hi\r\ndata: {}\r\n\r\nevent: message\rdata: {}\r\rdata: {{\"jsonrpc\":\"2.0\",\"method\":\"m\"}}\n\n",
            tools_response(json!(1)),
            tools_response(json!(2))
        );
        let (whole, whole_lists, _) = sse_cut(&[body.as_bytes()]).unwrap();
        assert!(!String::from_utf8_lossy(&whole).contains("delete_repo"));
        for at in 0..=body.len() {
            let (head, tail) = body.as_bytes().split_at(at);
            let (out, lists, dropped) = sse_cut(&[head, tail]).unwrap();
            assert_eq!(out, whole, "split at {at}");
            assert_eq!(lists, whole_lists, "split at {at}");
            assert!(!dropped);
        }
    }

    /// A rewritten event whose last line kept ends in a lone CR (its later
    /// data lines were merged into the first) is still ended where it was:
    /// an LF ending the event after that CR would read as one CRLF, and at
    /// the client the event would run on into the next one. Found by
    /// `fuzz/fuzz_targets/list_cutter.rs` (a cut stream cut again changed).
    #[test]
    fn a_rewritten_event_ending_in_a_lone_cr_still_ends() {
        let message = serde_json::to_string(&tools_response(json!(4))).unwrap();
        // Split between two members: the data lines join with an LF.
        let (head, tail) = message.split_at(message.find(',').unwrap() + 1);
        for event in [
            // The first data line, which the message is written into, last.
            format!("data: {head}\rdata: {tail}\n\n"),
            // Another field, kept, last.
            format!("data: {head}\ndata: {tail}\rid: 9\rdata:\n\n"),
        ] {
            let body = format!("{event}data: {{\"jsonrpc\":\"2.0\",\"method\":\"m\"}}\n\n");
            let (out, lists, dropped) = sse_cut(&[body.as_bytes()]).unwrap();
            assert!(!dropped);
            assert_eq!(lists.len(), 1);
            // Read again, the output is two events, and nothing changes.
            let (again, lists_again, dropped_again) = sse_cut(&[&out]).unwrap();
            assert_eq!(again, out);
            assert_eq!(lists_again.len(), 1);
            assert!(lists_again[0].removed.is_empty());
            assert!(!dropped_again);
            // However the stream is cut into chunks, with a blank line more
            // right after the rewritten event.
            let body = format!("{event}\n{}", &body[event.len()..]);
            let (whole, _, _) = sse_cut(&[body.as_bytes()]).unwrap();
            for at in 0..=body.len() {
                let (first, second) = body.as_bytes().split_at(at);
                let (out, _, _) = sse_cut(&[first, second]).unwrap();
                assert_eq!(out, whole, "split at {at}");
            }
        }
    }

    #[test]
    fn an_unfinished_event_is_held_then_dropped() {
        let body = format!("data: {}\n", tools_response(json!(3)));
        let (out, lists, dropped) = sse(&body);
        assert_eq!(out, "");
        assert!(lists.is_empty());
        assert!(dropped);
        let (out, _, dropped) = sse(": just a comment");
        assert_eq!(out, "");
        assert!(!dropped);
    }

    #[test]
    fn sse_events_that_cannot_be_read_fail_closed() {
        for event in [
            "data: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":NaN}\n\n",
            "data: {\"result\":{\"tools\":[]},\"result\":{\"tools\":[{\"name\":\"delete_repo\"}]}}\n\n",
        ] {
            assert!(matches!(
                sse_cut(&[event.as_bytes()]),
                Err(ListError::EventNotJson(_))
            ));
        }
        // An event longer than the limit cannot be held.
        let (policy, identity) = (policy(), bob());
        let cutter = ListCutter {
            policy: &policy,
            identity: &identity,
            limits: JsonLimits {
                max_bytes: 16,
                ..LIMITS
            },
        };
        let whole = b"data: 01234567890123456789\n\n";
        assert_eq!(
            EventStream::default()
                .push(&cutter, whole, false)
                .unwrap_err(),
            ListError::EventTooLarge { limit: 16 }
        );
        let mut stream = EventStream::default();
        assert!(stream.push(&cutter, b"data: 0123456789", false).is_ok());
        assert_eq!(
            stream.push(&cutter, b"0123", false).unwrap_err(),
            ListError::EventTooLarge { limit: 16 }
        );
    }

    #[test]
    fn failure_body_parses_back_in_both_framings() {
        let reason = "response body is larger than the limit of 10 bytes";
        let check = |message: &Value| {
            assert_eq!(message["jsonrpc"], "2.0");
            assert_eq!(message["id"], json!("req-1"));
            assert_eq!(message["error"]["code"], json!(-32603));
            assert_eq!(message["error"]["data"]["reason"], reason);
        };
        check(&serde_json::from_slice(&failure_body(&json!("req-1"), false, reason)).unwrap());
        let sse = String::from_utf8(failure_body(&json!("req-1"), true, reason)).unwrap();
        let data = sse
            .strip_prefix("event: message\ndata: ")
            .and_then(|s| s.strip_suffix("\n\n"))
            .unwrap();
        assert!(!data.contains('\n'));
        check(&serde_json::from_str(data).unwrap());
    }
}
