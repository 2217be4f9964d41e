//! How many HTTP streams this VM holds at once. Each stream in flight keeps
//! its judged request's state until its response is done (about 2 KB), so
//! the VM's linear memory follows the most streams it has held at the same
//! time, not the number of requests it has served: a rise in memory that
//! comes with a new peak here is concurrency, one without it is not.

use std::cell::Cell;
use std::rc::Rc;

/// The streams open in this VM now, and the most there have been.
#[derive(Debug, Default)]
pub(crate) struct StreamCount {
    open: Cell<u32>,
    peak: Cell<u32>,
}

thread_local! {
    /// One count per VM (a Wasm VM runs on one thread), whichever root
    /// context its streams belong to: plugins that share a VM (the same
    /// `vm_id`) share its memory, so they report one peak.
    static THIS_VM: Rc<StreamCount> = Rc::new(StreamCount::default());
}

impl StreamCount {
    /// The count of the VM this runs in.
    pub(crate) fn of_this_vm() -> Rc<Self> {
        THIS_VM.with(Rc::clone)
    }

    /// A stream's context was created; it counts until the context is
    /// dropped (`proxy_on_delete`).
    pub(crate) fn open(self: &Rc<Self>) -> OpenStream {
        let open = self.open.get().saturating_add(1);
        self.open.set(open);
        self.peak.set(self.peak.get().max(open));
        OpenStream(Rc::clone(self))
    }

    /// The most streams open at once since the VM started; 0 for a VM
    /// that has served none (Envoy's main thread).
    pub(crate) fn peak(&self) -> u32 {
        self.peak.get()
    }
}

/// Held by one stream's context for as long as it lives.
#[derive(Debug)]
pub(crate) struct OpenStream(Rc<StreamCount>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        let count = &self.0;
        count.open.set(count.open.get().saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_the_most_streams_open_at_once() {
        let count = Rc::new(StreamCount::default());
        assert_eq!(count.peak(), 0);
        let first = count.open();
        let second = count.open();
        drop(first);
        let third = count.open();
        assert_eq!(count.peak(), 2, "two were open at once, never three");
        drop((second, third));
        let _again = count.open();
        assert_eq!(count.peak(), 2);
        let more: Vec<_> = (0..3).map(|_| count.open()).collect();
        assert_eq!(count.peak(), 4);
        drop(more);
        assert_eq!(count.open.get(), 1);
    }

    #[test]
    fn every_root_context_of_a_vm_shares_one_count() {
        let first = StreamCount::of_this_vm();
        let second = StreamCount::of_this_vm();
        let before = first.peak();
        let open: Vec<_> = (0..before + 2).map(|_| first.open()).collect();
        assert_eq!(second.peak(), before + 2);
        drop(open);
    }
}
