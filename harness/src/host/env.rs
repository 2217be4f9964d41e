//! The `env` imports: proxy-wasm ABI v0.2.1 hostcalls, as Envoy's
//! cpp-host answers them.

use wasmtime::{Caller, Linker};

use super::abi::{self, Headers, LogLevel, MetricType, Status, buffer, map, stream};
use super::fault::HostFault;
use super::state::{
    ALLOWED_WHILE_ALLOCATING, ALLOWED_WHILE_INITIALIZING, Direction, HostState, HttpCall,
    LocalResponse, Metric, Phase,
};

pub(crate) type Ctx<'a> = Caller<'a, HostState>;
type R<T> = wasmtime::Result<T>;

/// Refuses hostcalls that Envoy refuses in the current phase.
pub(crate) fn enter(caller: &Ctx<'_>, hostcall: &'static str) -> R<()> {
    let (allowed, phase) = match caller.data().phase {
        Phase::Callback => (true, ""),
        Phase::Initializing => (
            ALLOWED_WHILE_INITIALIZING.contains(&hostcall),
            "`_initialize`/`main`",
        ),
        Phase::Allocating => (
            ALLOWED_WHILE_ALLOCATING.contains(&hostcall),
            "`proxy_on_memory_allocate`",
        ),
    };
    if allowed {
        Ok(())
    } else {
        Err(wasmtime::Error::new(HostFault::Restricted {
            hostcall: hostcall.to_owned(),
            phase,
        }))
    }
}

fn at(ptr: i32) -> usize {
    ptr as u32 as usize
}

pub(crate) fn read(caller: &Ctx<'_>, ptr: i32, len: i32) -> Option<Vec<u8>> {
    let memory = caller.data().memory?;
    let start = at(ptr);
    memory
        .data(caller)
        .get(start..start.checked_add(at(len))?)
        .map(<[u8]>::to_vec)
}

fn read_text(caller: &Ctx<'_>, ptr: i32, len: i32) -> Option<String> {
    read(caller, ptr, len).map(|b| String::from_utf8_lossy(&b).into_owned())
}

pub(crate) fn write(caller: &mut Ctx<'_>, ptr: i32, bytes: &[u8]) -> bool {
    let Some(memory) = caller.data().memory else {
        return false;
    };
    let start = at(ptr);
    let Some(end) = start.checked_add(bytes.len()) else {
        return false;
    };
    match memory.data_mut(&mut *caller).get_mut(start..end) {
        Some(slot) => {
            slot.copy_from_slice(bytes);
            true
        }
        None => false,
    }
}

pub(crate) fn write_u32(caller: &mut Ctx<'_>, ptr: i32, value: u32) -> bool {
    write(caller, ptr, &value.to_le_bytes())
}

pub(crate) fn write_u64(caller: &mut Ctx<'_>, ptr: i32, value: u64) -> bool {
    write(caller, ptr, &value.to_le_bytes())
}

/// Asks the guest for exactly `size` bytes (`proxy_on_memory_allocate`),
/// with the hostcalls Envoy allows there.
fn allocate(caller: &mut Ctx<'_>, size: usize) -> R<u32> {
    let Some(allocate) = caller.data().allocate.clone() else {
        return Ok(0);
    };
    let size = i32::try_from(size)?;
    let phase = caller.data().phase;
    caller.data_mut().phase = Phase::Allocating;
    let result = allocate.call(&mut *caller, size);
    caller.data_mut().phase = phase;
    Ok(result? as u32)
}

/// Returns data to the guest: allocate, copy, store pointer and size.
fn copy_out(caller: &mut Ctx<'_>, bytes: &[u8], ptr_ptr: i32, size_ptr: i32) -> R<i32> {
    let mut ptr = 0;
    if !bytes.is_empty() {
        ptr = allocate(caller, bytes.len())?;
        if ptr == 0 || !write(caller, ptr as i32, bytes) {
            return Ok(Status::InvalidMemoryAccess.code());
        }
    }
    let size = u32::try_from(bytes.len())?;
    if !write_u32(caller, ptr_ptr, ptr) || !write_u32(caller, size_ptr, size) {
        return Ok(Status::InvalidMemoryAccess.code());
    }
    Ok(Status::Ok.code())
}

fn misuse(hostcall: &str, message: &str) -> wasmtime::Error {
    wasmtime::Error::new(HostFault::Misuse {
        hostcall: hostcall.to_owned(),
        message: message.to_owned(),
    })
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

fn lower_eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn metric_index(state: &HostState, id: i32) -> Option<usize> {
    let index = usize::try_from(id).ok()?.checked_sub(1)?;
    (index < state.metrics.len()).then_some(index)
}

/// Defines every `env` import the host implements.
pub(crate) fn define(linker: &mut Linker<HostState>) -> R<()> {
    const ENV: &str = "env";
    let ok = Status::Ok.code();
    let not_found = Status::NotFound.code();
    let bad = Status::BadArgument.code();
    let oob = Status::InvalidMemoryAccess.code();

    linker.func_wrap(
        ENV,
        "proxy_log",
        move |caller: Ctx<'_>, level: i32, ptr: i32, len: i32| -> R<i32> {
            enter(&caller, "env.proxy_log")?;
            let Some(level) = LogLevel::from_raw(level) else {
                return Ok(bad);
            };
            let Some(message) = read_text(&caller, ptr, len) else {
                return Ok(oob);
            };
            let mut caller = caller;
            caller.data_mut().log(level, message);
            Ok(ok)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_get_log_level",
        move |mut caller: Ctx<'_>, ptr: i32| -> R<i32> {
            enter(&caller, "env.proxy_get_log_level")?;
            let level = caller.data().log_level as u32;
            Ok(if write_u32(&mut caller, ptr, level) {
                ok
            } else {
                oob
            })
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_get_current_time_nanoseconds",
        move |mut caller: Ctx<'_>, ptr: i32| -> R<i32> {
            enter(&caller, "env.proxy_get_current_time_nanoseconds")?;
            let now = caller.data().realtime_nanos;
            Ok(if write_u64(&mut caller, ptr, now) {
                ok
            } else {
                oob
            })
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_set_tick_period_milliseconds",
        move |mut caller: Ctx<'_>, period: i32| -> R<i32> {
            enter(&caller, "env.proxy_set_tick_period_milliseconds")?;
            caller.data_mut().tick_period_ms = period as u32;
            Ok(ok)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_get_buffer_bytes",
        move |mut caller: Ctx<'_>,
              kind: i32,
              start: i32,
              max_size: i32,
              ptr_ptr: i32,
              size_ptr: i32|
              -> R<i32> {
            enter(&caller, "env.proxy_get_buffer_bytes")?;
            if !(0..=buffer::MAX).contains(&kind) {
                return Ok(bad);
            }
            let Some(bytes) = buffer_view(caller.data_mut(), kind) else {
                return Ok(not_found);
            };
            let start = at(start);
            let end = start.saturating_add(at(max_size)).min(bytes.len());
            let slice = bytes.get(start..end).unwrap_or_default();
            copy_out(&mut caller, slice, ptr_ptr, size_ptr)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_set_buffer_bytes",
        move |mut caller: Ctx<'_>,
              kind: i32,
              start: i32,
              size: i32,
              data_ptr: i32,
              data_size: i32|
              -> R<i32> {
            enter(&caller, "env.proxy_set_buffer_bytes")?;
            if !(0..=buffer::MAX).contains(&kind) {
                return Ok(bad);
            }
            let Some(data) = read(&caller, data_ptr, data_size) else {
                return Ok(oob);
            };
            match body_buffer(caller.data_mut(), kind) {
                Body::Buffer(target) => Ok(if splice_body(target, at(start), at(size), data) {
                    ok
                } else {
                    bad
                }),
                // Envoy: an empty stand-in (refuses writes), or a buffer
                // type that cannot be set.
                Body::Absent => Ok(bad),
                Body::Other => Ok(not_found),
            }
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_get_header_map_pairs",
        move |mut caller: Ctx<'_>, kind: i32, ptr_ptr: i32, size_ptr: i32| -> R<i32> {
            enter(&caller, "env.proxy_get_header_map_pairs")?;
            // Envoy answers a map it cannot reach now with no pairs (and
            // the SDK accepts nothing but OK here).
            let bytes = match header_map(caller.data_mut(), kind, Access::Read) {
                Some(pairs) if !pairs.is_empty() => abi::encode_pairs(pairs),
                _ => Vec::new(),
            };
            copy_out(&mut caller, &bytes, ptr_ptr, size_ptr)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_set_header_map_pairs",
        move |mut caller: Ctx<'_>, kind: i32, ptr: i32, size: i32| -> R<i32> {
            enter(&caller, "env.proxy_set_header_map_pairs")?;
            let Some(bytes) = read(&caller, ptr, size) else {
                return Ok(oob);
            };
            let Some(pairs) = abi::decode_pairs(&bytes) else {
                return Ok(bad);
            };
            let Some(map) = header_map(caller.data_mut(), kind, Access::Write) else {
                return Ok(bad);
            };
            *map = pairs
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect();
            Ok(ok)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_get_header_map_value",
        move |mut caller: Ctx<'_>,
              kind: i32,
              key_ptr: i32,
              key_size: i32,
              value_ptr_ptr: i32,
              value_size_ptr: i32|
              -> R<i32> {
            enter(&caller, "env.proxy_get_header_map_value")?;
            let Some(key) = read_text(&caller, key_ptr, key_size) else {
                return Ok(oob);
            };
            // A map out of reach is BadArgument, except in the access-log
            // phase (`proxy_on_log`), where Envoy answers NotFound.
            let in_log = caller.data().callback == "proxy_on_log";
            let Some(pairs) = header_map(caller.data_mut(), kind, Access::Read) else {
                return Ok(if in_log { not_found } else { bad });
            };
            let Some(value) = pairs
                .iter()
                .find(|(k, _)| lower_eq(k, &key))
                .map(|(_, v)| v.clone())
            else {
                return Ok(not_found);
            };
            copy_out(&mut caller, value.as_bytes(), value_ptr_ptr, value_size_ptr)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_add_header_map_value",
        move |mut caller: Ctx<'_>,
              kind: i32,
              key_ptr: i32,
              key_size: i32,
              value_ptr: i32,
              value_size: i32|
              -> R<i32> {
            enter(&caller, "env.proxy_add_header_map_value")?;
            let (Some(key), Some(value)) = (
                read_text(&caller, key_ptr, key_size),
                read_text(&caller, value_ptr, value_size),
            ) else {
                return Ok(oob);
            };
            let Some(pairs) = header_map(caller.data_mut(), kind, Access::Write) else {
                return Ok(bad);
            };
            pairs.push((key.to_ascii_lowercase(), value));
            Ok(ok)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_replace_header_map_value",
        move |mut caller: Ctx<'_>,
              kind: i32,
              key_ptr: i32,
              key_size: i32,
              value_ptr: i32,
              value_size: i32|
              -> R<i32> {
            enter(&caller, "env.proxy_replace_header_map_value")?;
            let (Some(key), Some(value)) = (
                read_text(&caller, key_ptr, key_size),
                read_text(&caller, value_ptr, value_size),
            ) else {
                return Ok(oob);
            };
            let Some(pairs) = header_map(caller.data_mut(), kind, Access::Write) else {
                return Ok(bad);
            };
            match pairs.iter().position(|(k, _)| lower_eq(k, &key)) {
                Some(first) => {
                    let mut index = 0;
                    pairs.retain(|(k, _)| {
                        let keep = index <= first || !lower_eq(k, &key);
                        index += 1;
                        keep
                    });
                    if let Some(slot) = pairs.get_mut(first) {
                        slot.1 = value;
                    }
                }
                None => pairs.push((key.to_ascii_lowercase(), value)),
            }
            Ok(ok)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_remove_header_map_value",
        move |mut caller: Ctx<'_>, kind: i32, key_ptr: i32, key_size: i32| -> R<i32> {
            enter(&caller, "env.proxy_remove_header_map_value")?;
            let Some(key) = read_text(&caller, key_ptr, key_size) else {
                return Ok(oob);
            };
            let Some(pairs) = header_map(caller.data_mut(), kind, Access::Write) else {
                return Ok(bad);
            };
            pairs.retain(|(k, _)| !lower_eq(k, &key));
            Ok(ok)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_get_property",
        move |mut caller: Ctx<'_>,
              path_ptr: i32,
              path_size: i32,
              value_ptr_ptr: i32,
              value_size_ptr: i32|
              -> R<i32> {
            enter(&caller, "env.proxy_get_property")?;
            let Some(path) = read_text(&caller, path_ptr, path_size) else {
                return Ok(oob);
            };
            let key: Vec<String> = path.split('\0').map(str::to_owned).collect();
            let Some(value) = caller.data().properties.get(&key).cloned() else {
                return Ok(not_found);
            };
            copy_out(&mut caller, &value, value_ptr_ptr, value_size_ptr)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_set_property",
        move |mut caller: Ctx<'_>,
              path_ptr: i32,
              path_size: i32,
              value_ptr: i32,
              value_size: i32|
              -> R<i32> {
            enter(&caller, "env.proxy_set_property")?;
            let (Some(path), Some(value)) = (
                read_text(&caller, path_ptr, path_size),
                read(&caller, value_ptr, value_size),
            ) else {
                return Ok(oob);
            };
            let key: Vec<String> = path.split('\0').map(str::to_owned).collect();
            caller.data_mut().properties.insert(key, value);
            Ok(ok)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_send_local_response",
        move |mut caller: Ctx<'_>,
              status: i32,
              details_ptr: i32,
              details_size: i32,
              body_ptr: i32,
              body_size: i32,
              headers_ptr: i32,
              headers_size: i32,
              grpc_status: i32|
              -> R<i32> {
            enter(&caller, "env.proxy_send_local_response")?;
            let (Some(details), Some(body), Some(headers)) = (
                read_text(&caller, details_ptr, details_size),
                read(&caller, body_ptr, body_size),
                read(&caller, headers_ptr, headers_size),
            ) else {
                return Ok(oob);
            };
            let headers = abi::decode_pairs(&headers).unwrap_or_default();
            let Some(stream) = caller.data_mut().stream() else {
                return Err(misuse(
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
            Ok(ok)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_continue_stream",
        move |mut caller: Ctx<'_>, kind: i32| -> R<i32> {
            enter(&caller, "env.proxy_continue_stream")?;
            let direction = match kind {
                stream::HTTP_REQUEST => Direction::Request,
                stream::HTTP_RESPONSE => Direction::Response,
                // Downstream (a network filter's): nothing to continue here.
                stream::DOWNSTREAM => return Ok(ok),
                _ => return Ok(bad),
            };
            // Outside an HTTP context Envoy has no stream to continue and
            // answers OK.
            let Some(stream) = caller.data_mut().stream() else {
                return Ok(ok);
            };
            // Envoy drops its pointers to the maps and the current chunk
            // now and continues once the callback returns.
            let flow = stream.flow(direction);
            flow.continue_requested = true;
            flow.headers_live = false;
            flow.trailers_live = false;
            flow.in_body = false;
            Ok(ok)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_close_stream",
        move |mut caller: Ctx<'_>, kind: i32| -> R<i32> {
            enter(&caller, "env.proxy_close_stream")?;
            if !(0..=3).contains(&kind) {
                return Ok(bad);
            }
            // Envoy resets the stream once the callback returns.
            if let Some(stream) = caller.data_mut().stream() {
                stream.closed = true;
                stream.reset();
            }
            Ok(ok)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_http_call",
        move |mut caller: Ctx<'_>,
              upstream_ptr: i32,
              upstream_size: i32,
              headers_ptr: i32,
              headers_size: i32,
              body_ptr: i32,
              body_size: i32,
              trailers_ptr: i32,
              trailers_size: i32,
              timeout_ms: i32,
              token_ptr: i32|
              -> R<i32> {
            enter(&caller, "env.proxy_http_call")?;
            let (Some(upstream), Some(headers), Some(body), Some(trailers)) = (
                read_text(&caller, upstream_ptr, upstream_size),
                read(&caller, headers_ptr, headers_size),
                read(&caller, body_ptr, body_size),
                read(&caller, trailers_ptr, trailers_size),
            ) else {
                return Ok(oob);
            };
            let (Some(headers), Some(trailers)) =
                (abi::decode_pairs(&headers), abi::decode_pairs(&trailers))
            else {
                return Ok(bad);
            };
            // Envoy refuses calls without the pseudo-headers it needs.
            let has = |name: &str| headers.iter().any(|(k, _)| k == name);
            if upstream.is_empty() || !(has(":method") && has(":path") && has(":authority")) {
                return Ok(bad);
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
            Ok(if write_u32(&mut caller, token_ptr, token) {
                ok
            } else {
                oob
            })
        },
    )?;
    linker.func_wrap(ENV, "proxy_done", move |mut caller: Ctx<'_>| -> R<i32> {
        enter(&caller, "env.proxy_done")?;
        caller.data_mut().done_called = true;
        Ok(ok)
    })?;
    linker.func_wrap(
        ENV,
        "proxy_set_effective_context",
        move |mut caller: Ctx<'_>, context_id: i32| -> R<i32> {
            enter(&caller, "env.proxy_set_effective_context")?;
            let id = context_id as u32;
            let state = caller.data_mut();
            if id != state.root_id && !state.streams.contains_key(&id) {
                return Ok(bad);
            }
            state.context_id = id;
            Ok(ok)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_call_foreign_function",
        move |caller: Ctx<'_>,
              _name_ptr: i32,
              _name_size: i32,
              _args_ptr: i32,
              _args_size: i32,
              _ret_ptr_ptr: i32,
              _ret_size_ptr: i32|
              -> R<i32> {
            // No foreign functions are registered: Envoy's answer for an
            // unknown name.
            enter(&caller, "env.proxy_call_foreign_function")?;
            Ok(not_found)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_define_metric",
        move |mut caller: Ctx<'_>,
              kind: i32,
              name_ptr: i32,
              name_size: i32,
              id_ptr: i32|
              -> R<i32> {
            enter(&caller, "env.proxy_define_metric")?;
            let Some(kind) = MetricType::from_raw(kind) else {
                return Ok(bad);
            };
            let Some(name) = read_text(&caller, name_ptr, name_size) else {
                return Ok(oob);
            };
            let state = caller.data_mut();
            let index = match state.metrics.iter().position(|m| m.name == name) {
                Some(index) => index,
                None => {
                    state.metrics.push(Metric {
                        name,
                        kind,
                        value: 0,
                        samples: Vec::new(),
                    });
                    state.metrics.len() - 1
                }
            };
            let id = u32::try_from(index + 1)?;
            Ok(if write_u32(&mut caller, id_ptr, id) {
                ok
            } else {
                oob
            })
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_increment_metric",
        move |mut caller: Ctx<'_>, id: i32, offset: i64| -> R<i32> {
            enter(&caller, "env.proxy_increment_metric")?;
            let state = caller.data_mut();
            let Some(index) = metric_index(state, id) else {
                return Ok(not_found);
            };
            let Some(metric) = state.metrics.get_mut(index) else {
                return Ok(not_found);
            };
            match metric.kind {
                MetricType::Counter if offset < 0 => return Ok(bad),
                MetricType::Histogram => return Ok(bad),
                _ => metric.value += i128::from(offset),
            }
            Ok(ok)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_record_metric",
        move |mut caller: Ctx<'_>, id: i32, value: i64| -> R<i32> {
            enter(&caller, "env.proxy_record_metric")?;
            let value = value as u64;
            let state = caller.data_mut();
            let Some(index) = metric_index(state, id) else {
                return Ok(not_found);
            };
            let Some(metric) = state.metrics.get_mut(index) else {
                return Ok(not_found);
            };
            match metric.kind {
                MetricType::Counter => metric.value += i128::from(value),
                MetricType::Gauge => metric.value = i128::from(value),
                MetricType::Histogram => {
                    metric.value = i128::from(value);
                    metric.samples.push(value);
                }
            }
            Ok(ok)
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_get_metric",
        move |mut caller: Ctx<'_>, id: i32, ptr: i32| -> R<i32> {
            enter(&caller, "env.proxy_get_metric")?;
            let state = caller.data();
            let Some(metric) = metric_index(state, id).and_then(|i| state.metrics.get(i)) else {
                return Ok(not_found);
            };
            if metric.kind == MetricType::Histogram {
                return Ok(bad);
            }
            let value = metric.value as u64;
            Ok(if write_u64(&mut caller, ptr, value) {
                ok
            } else {
                oob
            })
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_get_shared_data",
        move |mut caller: Ctx<'_>,
              key_ptr: i32,
              key_size: i32,
              value_ptr_ptr: i32,
              value_size_ptr: i32,
              cas_ptr: i32|
              -> R<i32> {
            enter(&caller, "env.proxy_get_shared_data")?;
            let Some(key) = read_text(&caller, key_ptr, key_size) else {
                return Ok(oob);
            };
            let Some((value, cas)) = caller.data().shared_data.get(&key).cloned() else {
                return Ok(not_found);
            };
            let status = copy_out(&mut caller, &value, value_ptr_ptr, value_size_ptr)?;
            if status != ok {
                return Ok(status);
            }
            Ok(if write_u32(&mut caller, cas_ptr, cas) {
                ok
            } else {
                oob
            })
        },
    )?;
    linker.func_wrap(
        ENV,
        "proxy_set_shared_data",
        move |mut caller: Ctx<'_>,
              key_ptr: i32,
              key_size: i32,
              value_ptr: i32,
              value_size: i32,
              cas: i32|
              -> R<i32> {
            enter(&caller, "env.proxy_set_shared_data")?;
            let (Some(key), Some(value)) = (
                read_text(&caller, key_ptr, key_size),
                read(&caller, value_ptr, value_size),
            ) else {
                return Ok(oob);
            };
            let cas = cas as u32;
            let data = &mut caller.data_mut().shared_data;
            let current = data.get(&key).map_or(0, |(_, c)| *c);
            if cas != 0 && cas != current {
                return Ok(Status::CasMismatch.code());
            }
            data.insert(key, (value, current.wrapping_add(1).max(1)));
            Ok(ok)
        },
    )?;
    Ok(())
}
