//! How many HTTP streams this VM holds at once. Each stream in flight keeps
//! its judged request's state until its response is done (about 2 KB), so
//! the VM's linear memory follows the most streams it has held at the same
//! time, not the number of requests it has served: a rise in memory that
//! comes with a new peak here is concurrency, one without it is not.

use std::cell::Cell;

/// The streams open in this VM now, and the most there have been.
#[derive(Debug, Default)]
struct StreamCount {
    open: Cell<u32>,
    peak: Cell<u32>,
}

thread_local! {
    /// One count per VM (a Wasm VM runs on one thread), whichever root
    /// context its streams belong to: plugins that share a VM (the same
    /// `vm_id`) share its memory, so they report one peak.
    static THIS_VM: StreamCount = StreamCount::default();
}

/// A stream's context was created; it counts until the context is dropped
/// (`proxy_on_delete`).
pub(crate) fn open() -> OpenStream {
    THIS_VM.with(|count| {
        let open = count.open.get().saturating_add(1);
        count.open.set(open);
        count.peak.set(count.peak.get().max(open));
    });
    OpenStream(())
}

/// The most streams open at once since the VM started; 0 for a VM that has
/// served none (Envoy's main thread).
pub(crate) fn peak() -> u32 {
    THIS_VM.with(|count| count.peak.get())
}

/// Held by one stream's context for as long as it lives.
#[derive(Debug)]
pub(crate) struct OpenStream(());

impl Drop for OpenStream {
    fn drop(&mut self) {
        THIS_VM.with(|count| count.open.set(count.open.get().saturating_sub(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each test runs on its own thread: its own count, as a VM has.

    #[test]
    fn the_peak_is_the_most_streams_open_at_once() {
        assert_eq!(peak(), 0);
        let first = open();
        let second = open();
        drop(first);
        let third = open();
        assert_eq!(peak(), 2, "two were open at once, never three");
        drop((second, third));
        let _again = open();
        assert_eq!(peak(), 2);
        let more: Vec<_> = (0..3).map(|_| open()).collect();
        assert_eq!(peak(), 4);
        drop(more);
        assert_eq!(THIS_VM.with(|count| count.open.get()), 1);
    }

    #[test]
    fn another_vm_keeps_its_own_count() {
        let held: Vec<_> = (0..3).map(|_| open()).collect();
        let elsewhere = std::thread::spawn(peak).join().ok();
        assert_eq!(elsewhere, Some(0));
        assert_eq!(peak(), 3);
        drop(held);
    }
}
