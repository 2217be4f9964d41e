//! HTTP streams and calls: `proxy_send_local_response`,
//! `proxy_continue_stream`, `proxy_close_stream`, `proxy_http_call`.

use wasmtime::Linker;

use crate::abi::{self, Status, stream};
use crate::fault::HostFault;
use crate::link::{Ctx, R, hostcalls};
use crate::memory::{out_u32, read, read_text};
use crate::state::{Direction, HostState, HttpCall, LocalResponse};

pub(super) fn define(linker: &mut Linker<HostState>) -> R<()> {
    hostcalls!(linker, env: [
        proxy_send_local_response,
        proxy_continue_stream,
        proxy_close_stream,
        proxy_http_call,
    ]);
    Ok(())
}

/// `proxy_send_local_response(status, details_ptr, details_size, body_ptr,
/// body_size, headers_ptr, headers_size, grpc_status)`: answers the
/// current HTTP context locally (see `Stream::answer_locally`); outside an
/// HTTP context it traps.
#[expect(
    clippy::too_many_arguments,
    reason = "the ABI's signature, parameter for parameter"
)]
fn proxy_send_local_response(
    caller: &mut Ctx<'_>,
    status: i32,
    details_ptr: i32,
    details_size: i32,
    body_ptr: i32,
    body_size: i32,
    headers_ptr: i32,
    headers_size: i32,
    grpc_status: i32,
) -> R<Status> {
    let (Some(details), Some(body), Some(headers)) = (
        read_text(caller, details_ptr, details_size),
        read(caller, body_ptr, body_size),
        read(caller, headers_ptr, headers_size),
    ) else {
        return Ok(Status::InvalidMemoryAccess);
    };
    let headers = abi::decode_pairs(&headers).unwrap_or_default();
    let Some(stream) = caller.data_mut().stream() else {
        return Err(HostFault::misuse(
            "proxy_send_local_response",
            "called outside an HTTP context",
        ));
    };
    stream.answer_locally(LocalResponse {
        status: status as u32,
        details,
        headers,
        body,
        grpc_status,
    });
    Ok(Status::Ok)
}

/// `proxy_continue_stream(stream_type)`: the host continues that direction
/// once the callback returns, as Envoy does.
fn proxy_continue_stream(caller: &mut Ctx<'_>, kind: i32) -> R<Status> {
    let direction = match kind {
        stream::HTTP_REQUEST => Direction::Request,
        stream::HTTP_RESPONSE => Direction::Response,
        // Downstream (a network filter's): nothing to continue here.
        stream::DOWNSTREAM => return Ok(Status::Ok),
        _ => return Ok(Status::BadArgument),
    };
    // Outside an HTTP context Envoy has no stream to continue and answers
    // OK.
    let Some(stream) = caller.data_mut().stream() else {
        return Ok(Status::Ok);
    };
    // Envoy drops its pointers to the maps and the current chunk now and
    // continues once the callback returns.
    let flow = stream.flow(direction);
    flow.continue_requested = true;
    flow.headers_live = false;
    flow.trailers_live = false;
    flow.in_body = false;
    Ok(Status::Ok)
}

/// `proxy_close_stream(stream_type)`: resets the current HTTP stream.
fn proxy_close_stream(caller: &mut Ctx<'_>, kind: i32) -> R<Status> {
    match kind {
        // Envoy resets the stream once the callback returns.
        stream::HTTP_REQUEST | stream::HTTP_RESPONSE => {
            if let Some(stream) = caller.data_mut().stream() {
                stream.reset();
            }
            Ok(Status::Ok)
        }
        // Envoy closes a connection only for a network filter; an HTTP
        // stream goes on.
        stream::DOWNSTREAM | stream::UPSTREAM => Ok(Status::Ok),
        _ => Ok(Status::BadArgument),
    }
}

/// `proxy_http_call(upstream_ptr, upstream_size, headers_ptr,
/// headers_size, body_ptr, body_size, trailers_ptr, trailers_size,
/// timeout_ms, token_ptr)`: records the call as pending (answered with
/// `Emulator::respond_http_call`) and returns its token.
#[expect(
    clippy::too_many_arguments,
    reason = "the ABI's signature, parameter for parameter"
)]
fn proxy_http_call(
    caller: &mut Ctx<'_>,
    upstream_ptr: i32,
    upstream_size: i32,
    headers_ptr: i32,
    headers_size: i32,
    body_ptr: i32,
    body_size: i32,
    trailers_ptr: i32,
    trailers_size: i32,
    timeout_ms: i32,
    token_ptr: i32,
) -> R<Status> {
    let (Some(upstream), Some(headers), Some(body), Some(trailers)) = (
        read_text(caller, upstream_ptr, upstream_size),
        read(caller, headers_ptr, headers_size),
        read(caller, body_ptr, body_size),
        read(caller, trailers_ptr, trailers_size),
    ) else {
        return Ok(Status::InvalidMemoryAccess);
    };
    let (Some(headers), Some(trailers)) =
        (abi::decode_pairs(&headers), abi::decode_pairs(&trailers))
    else {
        return Ok(Status::BadArgument);
    };
    // Envoy refuses calls without the pseudo-headers it needs.
    let has = |name: &str| headers.iter().any(|(k, _)| k == name);
    if upstream.is_empty() || !(has(":method") && has(":path") && has(":authority")) {
        return Ok(Status::BadArgument);
    }
    let state = caller.data_mut();
    state.next_token += 1;
    let token = state.next_token;
    let context_id = state.context_id;
    state.http_calls.insert(
        token,
        HttpCall {
            token,
            context_id,
            upstream,
            headers,
            body,
            trailers,
            timeout_ms: timeout_ms as u32,
        },
    );
    Ok(out_u32(caller, token_ptr, token))
}
