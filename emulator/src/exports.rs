//! The guest exports the host calls.

use wasmtime::{Instance, Store, TypedFunc};

use crate::state::HostState;

/// A guest export the host calls, under the name it was found by (which
/// diagnostics report).
pub(crate) struct Callback<P, R> {
    pub(crate) name: &'static str,
    pub(crate) func: TypedFunc<P, R>,
}

impl<P, R> Clone for Callback<P, R> {
    fn clone(&self) -> Self {
        Self {
            name: self.name,
            func: self.func.clone(),
        }
    }
}

pub(crate) type Cb0 = Callback<(), ()>;
pub(crate) type Cb1 = Callback<i32, ()>;
pub(crate) type Cb1R = Callback<i32, i32>;
pub(crate) type Cb2 = Callback<(i32, i32), ()>;
pub(crate) type Cb2R = Callback<(i32, i32), i32>;
pub(crate) type Cb3R = Callback<(i32, i32, i32), i32>;
pub(crate) type Cb5 = Callback<(i32, i32, i32, i32, i32), ()>;

/// The guest callbacks the host calls; absent ones are skipped (as Envoy
/// does), stream callbacks then count as `Continue`.
pub(crate) struct Exports {
    pub(crate) initialize: Option<Cb0>,
    pub(crate) start: Option<Cb0>,
    pub(crate) main: Option<Cb2R>,
    pub(crate) context_create: Option<Cb2>,
    pub(crate) vm_start: Option<Cb2R>,
    pub(crate) configure: Option<Cb2R>,
    pub(crate) request_headers: Option<Cb3R>,
    pub(crate) request_body: Option<Cb3R>,
    pub(crate) request_trailers: Option<Cb2R>,
    pub(crate) response_headers: Option<Cb3R>,
    pub(crate) response_body: Option<Cb3R>,
    pub(crate) response_trailers: Option<Cb2R>,
    pub(crate) done: Option<Cb1R>,
    pub(crate) log: Option<Cb1>,
    pub(crate) delete: Option<Cb1>,
    pub(crate) tick: Option<Cb1>,
    pub(crate) http_call_response: Option<Cb5>,
}

impl Exports {
    pub(crate) fn find(store: &mut Store<HostState>, instance: &Instance) -> Self {
        macro_rules! get {
            ($name:literal) => {
                instance
                    .get_typed_func(&mut *store, $name)
                    .ok()
                    .map(|func| Callback { name: $name, func })
            };
        }
        Self {
            initialize: get!("_initialize"),
            start: get!("_start"),
            main: get!("main"),
            context_create: get!("proxy_on_context_create"),
            vm_start: get!("proxy_on_vm_start"),
            configure: get!("proxy_on_configure"),
            request_headers: get!("proxy_on_request_headers"),
            request_body: get!("proxy_on_request_body"),
            request_trailers: get!("proxy_on_request_trailers"),
            response_headers: get!("proxy_on_response_headers"),
            response_body: get!("proxy_on_response_body"),
            response_trailers: get!("proxy_on_response_trailers"),
            done: get!("proxy_on_done"),
            log: get!("proxy_on_log"),
            delete: get!("proxy_on_delete"),
            tick: get!("proxy_on_tick"),
            http_call_response: get!("proxy_on_http_call_response"),
        }
    }
}
