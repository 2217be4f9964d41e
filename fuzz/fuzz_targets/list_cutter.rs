//! The list cutter on response bodies, as JSON and as an event stream fed
//! in an arbitrary chunking (see `warden_fuzz::chunked`), for each caller;
//! the skim's cut of a JSON body against the cut of its parsed tree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use policy_sdk::identity::Identity;
use policy_sdk::json::{JsonLimits, parse_strict};
use policy_sdk::listing::{EventStream, ListCutter, ListError, ListKind, ListSummary, UNNAMED};
use serde_json::Value;
use warden_fuzz::{CALLERS, chunked, warden};

/// Far above any input, so no event is refused for its size (which may
/// depend on the chunking) and a re-serialised body still fits.
const LIMITS: JsonLimits = JsonLimits {
    max_bytes: 1 << 24,
    max_depth: 32,
};

type Streamed = (Vec<u8>, Vec<ListSummary>, bool);

/// Feeds `chunks` and ends the stream: the bytes sent on, the lists found,
/// and whether an unfinished event with data was dropped.
fn stream(cutter: &ListCutter<'_>, chunks: &[&[u8]]) -> Result<Streamed, ListError> {
    let mut events = EventStream::default();
    let (mut sent, mut lists) = (Vec::new(), Vec::new());
    for (n, chunk) in chunks.iter().enumerate() {
        let cut = events.push(cutter, chunk, n + 1 == chunks.len())?;
        sent.extend(cut.body.unwrap_or_else(|| chunk.to_vec()));
        lists.extend(cut.lists);
    }
    Ok((sent, lists, events.finish().dropped_data))
}

fn removed_nothing(lists: &[ListSummary]) -> bool {
    lists.iter().all(|list| list.removed.is_empty())
}

/// No entry left in a list of `message` bears a name that was removed from
/// a list of the same kind.
fn check_message(message: &Value, lists: &[ListSummary]) {
    let Some(result) = message.get("result") else {
        return;
    };
    for kind in ListKind::ALL {
        let Some(Value::Array(entries)) = result.get(kind.result_key()) else {
            continue;
        };
        for entry in entries {
            let Some(name) = entry.get(kind.entry_key()).and_then(Value::as_str) else {
                panic!("an entry without a name was kept: {entry}");
            };
            let removed = lists
                .iter()
                .filter(|list| list.kind == kind)
                .flat_map(|list| &list.removed)
                .any(|removed| removed == name && removed != UNNAMED);
            assert!(!removed, "{name:?} was removed and is still listed");
        }
    }
}

fn check_caller(identity: &Identity, chunks: &[&[u8]], body: &[u8]) {
    let cutter = ListCutter {
        policy: warden().policy(),
        identity,
        limits: LIMITS,
    };

    // The skim's cut agrees with the tree's: the same error or the same
    // lists, and bodies that read as the same JSON.
    match (cutter.json_body(body), cutter.json_body_by_tree(body)) {
        (Ok(skimmed), Ok(tree)) => {
            assert_eq!(skimmed.lists, tree.lists);
            assert_eq!(skimmed.body.is_some(), tree.body.is_some());
            if let (Some(skimmed), Some(tree)) = (&skimmed.body, &tree.body) {
                let read = |bytes: &[u8]| parse_strict(bytes, LIMITS).ok();
                assert!(read(skimmed).is_some(), "the skim's cut does not read");
                assert_eq!(read(skimmed), read(tree));
            }
        }
        (Err(skimmed), Err(tree)) => assert_eq!(skimmed, tree),
        (skimmed, tree) => panic!("skim: {skimmed:?}, tree: {tree:?}"),
    }

    if let Ok(cut) = cutter.json_body(body) {
        let sent = cut.body.as_deref().unwrap_or(body);
        assert_eq!(cut.body.is_some(), !removed_nothing(&cut.lists));
        // What the cutter passed reads strictly (an empty body carries no
        // message).
        if !sent.trim_ascii().is_empty() {
            let value = parse_strict(sent, LIMITS).expect("a body the cutter passed reads");
            match &value {
                Value::Array(messages) => {
                    messages.iter().for_each(|m| check_message(m, &cut.lists))
                }
                message => check_message(message, &cut.lists),
            }
        }
        // Cutting what was sent removes nothing more.
        match cutter.json_body(sent) {
            Ok(again) => {
                assert!(again.body.is_none(), "a cut body was cut again");
                assert!(removed_nothing(&again.lists));
            }
            Err(e) => panic!("a cut body no longer reads: {e}"),
        }
    }

    let whole = stream(&cutter, &[body]);
    let split = stream(&cutter, chunks);
    match (&whole, &split) {
        (Ok(whole), Ok(split)) => assert_eq!(whole, split, "the chunking changed the output"),
        (Err(_), Err(_)) => {}
        _ => panic!("whole: {whole:?}, in chunks: {split:?}"),
    }
    if let Ok((sent, _, _)) = whole {
        match stream(&cutter, &[&sent]) {
            Ok((again, lists, dropped)) => {
                assert_eq!(again, sent, "a cut stream was changed again");
                assert!(removed_nothing(&lists));
                assert!(!dropped);
            }
            Err(e) => panic!("a cut stream no longer reads: {e}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (chunks, body) = chunked(data);
    for identity in CALLERS.iter() {
        check_caller(identity, &chunks, body);
    }
});
