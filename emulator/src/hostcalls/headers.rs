//! Header maps: `proxy_get_header_map_pairs`, `proxy_set_header_map_pairs`,
//! `proxy_get_header_map_value`, `proxy_add_header_map_value`,
//! `proxy_replace_header_map_value`, `proxy_remove_header_map_value`.
//! Names are matched without regard to case and stored in lower case.

use wasmtime::Linker;

use crate::abi::{self, Headers, Status, map};
use crate::link::{Ctx, R, hostcalls};
use crate::memory::{copy_out, read, read_text};
use crate::state::HostState;

pub(super) fn define(linker: &mut Linker<HostState>) -> R<()> {
    hostcalls!(linker, env: [
        proxy_get_header_map_pairs,
        proxy_set_header_map_pairs,
        proxy_get_header_map_value,
        proxy_add_header_map_value,
        proxy_replace_header_map_value,
        proxy_remove_header_map_value,
    ]);
    Ok(())
}

/// `proxy_get_header_map_pairs(type, data_ptr_ptr, data_size_ptr)`: the
/// map in the ABI wire format.
fn proxy_get_header_map_pairs(
    caller: &mut Ctx<'_>,
    kind: i32,
    ptr_ptr: i32,
    size_ptr: i32,
) -> R<Status> {
    // Envoy answers a map it cannot reach now with no pairs (and the SDK
    // accepts nothing but OK here).
    let bytes = match header_map(caller.data_mut(), kind, Access::Read) {
        Some(pairs) if !pairs.is_empty() => abi::encode_pairs(pairs),
        _ => Vec::new(),
    };
    copy_out(caller, &bytes, ptr_ptr, size_ptr)
}

/// `proxy_set_header_map_pairs(type, data_ptr, data_size)`: replaces the
/// whole map.
fn proxy_set_header_map_pairs(caller: &mut Ctx<'_>, kind: i32, ptr: i32, size: i32) -> R<Status> {
    let Some(bytes) = read(caller, ptr, size) else {
        return Ok(Status::InvalidMemoryAccess);
    };
    let Some(pairs) = abi::decode_pairs(&bytes) else {
        return Ok(Status::BadArgument);
    };
    Ok(edit(caller, kind, |map| {
        *map = pairs
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
    }))
}

/// `proxy_get_header_map_value(type, key_ptr, key_size, value_ptr_ptr,
/// value_size_ptr)`: the first value of that name.
fn proxy_get_header_map_value(
    caller: &mut Ctx<'_>,
    kind: i32,
    key_ptr: i32,
    key_size: i32,
    value_ptr_ptr: i32,
    value_size_ptr: i32,
) -> R<Status> {
    let Some(key) = read_text(caller, key_ptr, key_size) else {
        return Ok(Status::InvalidMemoryAccess);
    };
    // A map out of reach is BadArgument, except in the access-log phase
    // (`proxy_on_log`), where Envoy answers NotFound.
    let in_log = caller.data().callback == "proxy_on_log";
    let Some(pairs) = header_map(caller.data_mut(), kind, Access::Read) else {
        return Ok(if in_log {
            Status::NotFound
        } else {
            Status::BadArgument
        });
    };
    let Some(value) = pairs
        .iter()
        .find(|(k, _)| lower_eq(k, &key))
        .map(|(_, v)| v.clone())
    else {
        return Ok(Status::NotFound);
    };
    copy_out(caller, value.as_bytes(), value_ptr_ptr, value_size_ptr)
}

/// `proxy_add_header_map_value(type, key_ptr, key_size, value_ptr,
/// value_size)`: adds a pair, keeping any of the same name.
fn proxy_add_header_map_value(
    caller: &mut Ctx<'_>,
    kind: i32,
    key_ptr: i32,
    key_size: i32,
    value_ptr: i32,
    value_size: i32,
) -> R<Status> {
    let Some((key, value)) = read_pair(caller, key_ptr, key_size, value_ptr, value_size) else {
        return Ok(Status::InvalidMemoryAccess);
    };
    Ok(edit(caller, kind, |pairs| {
        pairs.push((key.to_ascii_lowercase(), value));
    }))
}

/// `proxy_replace_header_map_value(type, key_ptr, key_size, value_ptr,
/// value_size)`: sets the first pair of that name and drops the others, or
/// adds one.
fn proxy_replace_header_map_value(
    caller: &mut Ctx<'_>,
    kind: i32,
    key_ptr: i32,
    key_size: i32,
    value_ptr: i32,
    value_size: i32,
) -> R<Status> {
    let Some((key, value)) = read_pair(caller, key_ptr, key_size, value_ptr, value_size) else {
        return Ok(Status::InvalidMemoryAccess);
    };
    Ok(edit(caller, kind, |pairs| {
        // The first pair of that name takes the value; later ones go.
        let mut value = Some(value);
        pairs.retain_mut(|(k, v)| {
            if !lower_eq(k, &key) {
                return true;
            }
            value.take().map(|new| *v = new).is_some()
        });
        if let Some(value) = value {
            pairs.push((key.to_ascii_lowercase(), value));
        }
    }))
}

/// `proxy_remove_header_map_value(type, key_ptr, key_size)`: drops every
/// pair of that name.
fn proxy_remove_header_map_value(
    caller: &mut Ctx<'_>,
    kind: i32,
    key_ptr: i32,
    key_size: i32,
) -> R<Status> {
    let Some(key) = read_text(caller, key_ptr, key_size) else {
        return Ok(Status::InvalidMemoryAccess);
    };
    Ok(edit(caller, kind, |pairs| {
        pairs.retain(|(k, _)| !lower_eq(k, &key));
    }))
}

/// A header name and value from guest memory.
fn read_pair(
    caller: &Ctx<'_>,
    key_ptr: i32,
    key_size: i32,
    value_ptr: i32,
    value_size: i32,
) -> Option<(String, String)> {
    Some((
        read_text(caller, key_ptr, key_size)?,
        read_text(caller, value_ptr, value_size)?,
    ))
}

/// Applies `change` to the map of `kind` where the guest may change it now;
/// `BadArgument` where not.
fn edit(caller: &mut Ctx<'_>, kind: i32, change: impl FnOnce(&mut Headers)) -> Status {
    match header_map(caller.data_mut(), kind, Access::Write) {
        Some(pairs) => {
            change(pairs);
            Status::Ok
        }
        None => Status::BadArgument,
    }
}

fn lower_eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Whether a hostcall only reads a map or also changes it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// The header map of `kind` in the current context, where the guest can
/// reach one now. As in Envoy, a stream's header map is reachable from its
/// headers callback until the headers continue, its trailer map from the
/// trailers callback until they continue; in `proxy_on_log` the request
/// headers and the response headers and trailers can be read.
fn header_map(state: &mut HostState, kind: i32, access: Access) -> Option<&mut Headers> {
    if matches!(
        kind,
        map::HTTP_CALL_RESPONSE_HEADERS | map::HTTP_CALL_RESPONSE_TRAILERS
    ) {
        let (headers, _, trailers) = state.call_response.as_mut()?;
        return Some(if kind == map::HTTP_CALL_RESPONSE_HEADERS {
            headers
        } else {
            trailers
        });
    }
    let access_log = access == Access::Read && state.callback == "proxy_on_log";
    let stream = state.stream()?;
    let (flow, trailers) = match kind {
        map::HTTP_REQUEST_HEADERS => (&mut stream.request, false),
        map::HTTP_REQUEST_TRAILERS => (&mut stream.request, true),
        map::HTTP_RESPONSE_HEADERS => (&mut stream.response, false),
        map::HTTP_RESPONSE_TRAILERS => (&mut stream.response, true),
        _ => return None,
    };
    if trailers {
        let readable = flow.trailers_live || (access_log && kind == map::HTTP_RESPONSE_TRAILERS);
        readable.then_some(())?;
        flow.trailers.as_mut()
    } else {
        (flow.headers_live || access_log).then_some(())?;
        flow.headers.as_mut()
    }
}
