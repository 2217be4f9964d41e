//! Buffers: `proxy_get_buffer_bytes`, `proxy_set_buffer_bytes` (request and
//! response bodies, an HTTP call's answer, the VM and plugin
//! configurations).

use wasmtime::Linker;

use crate::abi::{Status, buffer};
use crate::link::{Ctx, R, hostcalls};
use crate::memory::{at, copy_out, read};
use crate::state::HostState;

pub(super) fn define(linker: &mut Linker<HostState>) -> R<()> {
    hostcalls!(linker, env: [proxy_get_buffer_bytes, proxy_set_buffer_bytes]);
    Ok(())
}

/// `proxy_get_buffer_bytes(type, start, max_size, data_ptr_ptr,
/// data_size_ptr)`: up to `max_size` bytes from `start` of the buffer the
/// guest can read now; `NotFound` for a type that has none in this phase.
fn proxy_get_buffer_bytes(
    caller: &mut Ctx<'_>,
    kind: i32,
    start: i32,
    max_size: i32,
    ptr_ptr: i32,
    size_ptr: i32,
) -> R<Status> {
    if !(0..=buffer::MAX).contains(&kind) {
        return Ok(Status::BadArgument);
    }
    let Some(bytes) = buffer_view(caller.data_mut(), kind) else {
        return Ok(Status::NotFound);
    };
    let start = at(start);
    let end = start.saturating_add(at(max_size)).min(bytes.len());
    let slice = bytes.get(start..end).unwrap_or_default();
    copy_out(caller, slice, ptr_ptr, size_ptr)
}

/// `proxy_set_buffer_bytes(type, start, size, data_ptr, data_size)`:
/// replaces or appends to a body the guest can reach now (see
/// [`splice_body`]).
fn proxy_set_buffer_bytes(
    caller: &mut Ctx<'_>,
    kind: i32,
    start: i32,
    size: i32,
    data_ptr: i32,
    data_size: i32,
) -> R<Status> {
    if !(0..=buffer::MAX).contains(&kind) {
        return Ok(Status::BadArgument);
    }
    let Some(data) = read(caller, data_ptr, data_size) else {
        return Ok(Status::InvalidMemoryAccess);
    };
    Ok(match body_buffer(caller.data_mut(), kind) {
        Body::Buffer(target) => {
            if splice_body(target, at(start), at(size), data) {
                Status::Ok
            } else {
                Status::BadArgument
            }
        }
        // Envoy: an empty stand-in (refuses writes), or a buffer type that
        // cannot be set.
        Body::Absent => Status::BadArgument,
        Body::Other => Status::NotFound,
    })
}

/// What `proxy_get_buffer_bytes` / `proxy_set_buffer_bytes` reach for a
/// body buffer type, as Envoy's `Context::getBuffer` answers.
enum Body<'a> {
    /// Not a body buffer type.
    Other,
    /// A body type with nothing behind it now (Envoy hands out an empty
    /// buffer: reads give no bytes, writes are refused).
    Absent,
    Buffer(&'a mut Vec<u8>),
}

/// The request or response body buffer of the current context: while that
/// body's callback runs, and from any callback while the guest buffers it
/// (its last body callback returned `Pause`), e.g. in the trailers callback
/// or an HTTP call's answer.
fn body_buffer(state: &mut HostState, kind: i32) -> Body<'_> {
    if !matches!(kind, buffer::HTTP_REQUEST_BODY | buffer::HTTP_RESPONSE_BODY) {
        return Body::Other;
    }
    let Some(stream) = state.stream() else {
        return Body::Absent;
    };
    let flow = if kind == buffer::HTTP_REQUEST_BODY {
        &mut stream.request
    } else {
        &mut stream.response
    };
    if flow.in_body || flow.buffering {
        Body::Buffer(&mut flow.buffer)
    } else {
        Body::Absent
    }
}

/// The buffer of `kind` as the guest may read it now.
fn buffer_view(state: &mut HostState, kind: i32) -> Option<Vec<u8>> {
    match kind {
        buffer::VM_CONFIGURATION if state.in_vm_start => Some(state.vm_configuration.clone()),
        buffer::PLUGIN_CONFIGURATION if state.in_configure => {
            Some(state.plugin_configuration.clone())
        }
        buffer::HTTP_CALL_RESPONSE_BODY => state.call_response.as_ref().map(|(_, b, _)| b.clone()),
        _ => match body_buffer(state, kind) {
            Body::Buffer(bytes) => Some(bytes.clone()),
            Body::Absent => Some(Vec::new()),
            Body::Other => None,
        },
    }
}

/// Envoy's `Buffer::copyFrom` on a body: at `start == 0` drain `size`
/// bytes and prepend `data` (so `size` ≥ the length replaces the whole
/// body); at or past the end, append; anything else is refused.
fn splice_body(target: &mut Vec<u8>, start: usize, size: usize, data: Vec<u8>) -> bool {
    if start == 0 {
        let drained = size.min(target.len());
        target.splice(..drained, data);
        true
    } else if start >= target.len() {
        target.extend(data);
        true
    } else {
        false
    }
}
