//! Shared fixtures of the fuzz targets: the example policy compiled once,
//! and the callers it is judged for.

use std::sync::LazyLock;

use policy_sdk::Warden;
use policy_sdk::identity::Identity;
use policy_sdk::testing;

/// `examples/policy.yaml` in its JSON form (the plugin configuration), the
/// demo key set inlined as `warden compile` does.
pub const EXAMPLE_POLICY: &str = include_str!("../fixtures/policy.json");

thread_local! {
    // `Warden` keeps caches in `RefCell`s (one per filter instance), so it
    // is not `Sync`: one per thread, kept for the process.
    static WARDEN: &'static Warden = Box::leak(Box::new(
        match Warden::from_json(EXAMPLE_POLICY) {
            Ok(warden) => warden,
            Err(e) => panic!("fuzz/fixtures/policy.json does not compile: {e}"),
        },
    ));
}

/// The example policy, compiled.
pub fn warden() -> &'static Warden {
    WARDEN.with(|warden| *warden)
}

/// A human engineer, a human outside engineering, an agent alone, and the
/// agent acting for the engineer: the callers whose views differ most.
pub static CALLERS: LazyLock<[Identity; 4]> = LazyLock::new(|| {
    [
        testing::direct(testing::alice()),
        testing::direct(testing::bob()),
        testing::direct(testing::agent()),
        testing::delegated(testing::alice(), testing::agent()),
    ]
});

/// Cuts `data` into a chunking and a body: the first byte gives how many
/// chunk lengths follow (0 to 7), each one byte; the rest is the body, whose
/// remainder after those chunks is the last chunk.
pub fn chunked(data: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let Some((&count, rest)) = data.split_first() else {
        return (vec![&[][..]], &[][..]);
    };
    let count = usize::from(count % 8).min(rest.len());
    let (lengths, body) = rest.split_at(count);
    let mut chunks = Vec::new();
    let mut left = body;
    for &length in lengths {
        let (chunk, after) = left.split_at(usize::from(length).min(left.len()));
        chunks.push(chunk);
        left = after;
    }
    chunks.push(left);
    (chunks, body)
}
