//! Delivering an HTTP stream's headers, body and trailers to the guest, in
//! both directions, acting on `proxy_continue_stream` as Envoy does, and
//! ending the stream.

use super::{Emulator, id_raw, lowercase_names, raw};
use crate::abi::Action;
use crate::error::HarnessError;
use crate::exports::Cb3R;
use crate::options::HeaderPause;
use crate::state::{Direction, Phase};

impl Emulator {
    /// Delivers the request headers: runs `proxy_on_request_headers(id,
    /// count, end_of_stream)`. `Continue` forwards them upstream (see
    /// [`upstream_request_headers`](Self::upstream_request_headers)); `Pause`
    /// holds them until a body or trailers callback continues or the guest
    /// calls `proxy_continue_stream(0)`. Under [`HeaderPause::StopAll`] a
    /// `Pause` also stops the body and trailers callbacks until then (see
    /// [`request_stopped`](Self::request_stopped)).
    ///
    /// After any callback, the host acts on the guest's
    /// `proxy_continue_stream` calls, as Envoy does once the callback
    /// returns (for a stopped stream that runs the owed body and trailers
    /// callbacks).
    pub fn request_headers(
        &mut self,
        id: u32,
        headers: &[(&str, &str)],
        end_of_stream: bool,
    ) -> Result<Action, HarnessError> {
        let callback = self.exports.request_headers.clone();
        self.deliver_headers(Direction::Request, callback, id, headers, end_of_stream)
    }

    /// Delivers a request body chunk: the host appends it to what it
    /// buffered and runs `proxy_on_request_body(id, buffered_size,
    /// end_of_stream)`. `Pause` keeps buffering (Envoy's
    /// StopIterationAndBuffer); `Continue` forwards held headers and the
    /// buffered body. While the request is stopped
    /// ([`HeaderPause::StopAll`]) the host only keeps the chunk, runs
    /// nothing and answers `Pause`.
    pub fn request_body(
        &mut self,
        id: u32,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Result<Action, HarnessError> {
        self.deliver_body(Direction::Request, id, chunk, end_of_stream)
    }

    /// Delivers request trailers (the end of the request): runs
    /// `proxy_on_request_trailers(id, count)`; `Continue` forwards held
    /// headers, the buffered body and the trailers (see
    /// [`upstream_request_trailers`](Self::upstream_request_trailers)),
    /// `Pause` holds the trailers too. While the request is stopped the host
    /// keeps them, runs nothing and answers `Pause`.
    pub fn request_trailers(
        &mut self,
        id: u32,
        trailers: &[(&str, &str)],
    ) -> Result<Action, HarnessError> {
        self.deliver_trailers(Direction::Request, id, trailers)
    }

    /// Delivers the upstream's response headers: runs
    /// `proxy_on_response_headers(id, count, end_of_stream)`. `Continue`
    /// forwards them to the client (see
    /// [`downstream_response_headers`](Self::downstream_response_headers));
    /// `Pause` holds them as for the request (continued by
    /// `proxy_continue_stream(1)`).
    pub fn response_headers(
        &mut self,
        id: u32,
        headers: &[(&str, &str)],
        end_of_stream: bool,
    ) -> Result<Action, HarnessError> {
        let callback = self.exports.response_headers.clone();
        self.deliver_headers(Direction::Response, callback, id, headers, end_of_stream)
    }

    /// Delivers a response body chunk: runs `proxy_on_response_body(id,
    /// buffered_size, end_of_stream)`, buffering while the guest pauses
    /// (nothing runs while the response is stopped).
    pub fn response_body(
        &mut self,
        id: u32,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Result<Action, HarnessError> {
        self.deliver_body(Direction::Response, id, chunk, end_of_stream)
    }

    /// Delivers response trailers: runs `proxy_on_response_trailers(id,
    /// count)`, as for the request.
    pub fn response_trailers(
        &mut self,
        id: u32,
        trailers: &[(&str, &str)],
    ) -> Result<Action, HarnessError> {
        self.deliver_trailers(Direction::Response, id, trailers)
    }

    /// The host side of a headers callback of either direction: the map is
    /// stored (lower-case names) for the guest, `callback(id, count,
    /// end_of_stream)` runs (an absent export counts as `Continue`), then
    /// `Continue` lets the headers go on and `Pause` holds them (with
    /// [`HeaderPause::StopAll`], the body and trailers too).
    fn deliver_headers(
        &mut self,
        direction: Direction,
        callback: Option<Cb3R>,
        id: u32,
        headers: &[(&str, &str)],
        end_of_stream: bool,
    ) -> Result<Action, HarnessError> {
        self.ensure_open(id)?;
        let headers = lowercase_names(headers);
        let count = raw(headers.len());
        let flow = self.stream_mut(id)?.flow(direction);
        flow.headers = Some(headers);
        flow.headers_live = true;
        flow.ended = end_of_stream;
        let action = match callback {
            Some(f) => Action::from_raw(self.call3(id, f, count, i32::from(end_of_stream))?),
            None => Action::Continue,
        };
        let stop_all = self.header_pause == HeaderPause::StopAll;
        let stream = self.stream_mut(id)?;
        match action {
            Action::Continue => {
                // Envoy drops its pointer to the map once headers continue.
                stream.flow(direction).headers_live = false;
                stream.release(direction);
            }
            Action::Pause => stream.hold(direction, stop_all),
        }
        self.settle()?;
        Ok(action)
    }

    /// The host side of a body chunk of either direction: the chunk is
    /// appended to the host's buffer; while the headers are stopped
    /// ([`HeaderPause::StopAll`]) the host keeps it and runs nothing
    /// (answering `Pause`), otherwise the body callback runs.
    fn deliver_body(
        &mut self,
        direction: Direction,
        id: u32,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Result<Action, HarnessError> {
        self.ensure_open(id)?;
        let flow = self.stream_mut(id)?.flow(direction);
        flow.buffer.extend_from_slice(chunk);
        flow.ended |= end_of_stream;
        if flow.stopped_all {
            flow.body_waiting = true;
            return Ok(Action::Pause);
        }
        let action = self.body_callback(direction, id, end_of_stream)?;
        self.settle()?;
        Ok(action)
    }

    /// Runs `callback(id, buffered_size, end_of_stream)` over the host's
    /// buffer, which the guest can read and edit meanwhile; `Continue` lets
    /// held headers and the buffer go on, `Pause` keeps buffering (Envoy's
    /// StopIterationAndBuffer; the guest can then reach the buffer from
    /// other callbacks too).
    fn body_callback(
        &mut self,
        direction: Direction,
        id: u32,
        end_of_stream: bool,
    ) -> Result<Action, HarnessError> {
        let callback = match direction {
            Direction::Request => self.exports.request_body.clone(),
            Direction::Response => self.exports.response_body.clone(),
        };
        let flow = self.stream_mut(id)?.flow(direction);
        let size = raw(flow.buffer.len());
        flow.in_body = true;
        let result = match callback {
            Some(f) => self.call3(id, f, size, i32::from(end_of_stream)),
            None => Ok(0),
        };
        let stream = self.stream_mut(id)?;
        stream.flow(direction).in_body = false;
        let action = Action::from_raw(result?);
        match action {
            Action::Continue => stream.release(direction),
            Action::Pause => stream.buffer_body(direction),
        }
        Ok(action)
    }

    /// The host side of trailers of either direction: the map is stored;
    /// while the headers are stopped the host keeps it and runs nothing
    /// (answering `Pause`), otherwise the trailers callback runs.
    fn deliver_trailers(
        &mut self,
        direction: Direction,
        id: u32,
        trailers: &[(&str, &str)],
    ) -> Result<Action, HarnessError> {
        self.ensure_open(id)?;
        let flow = self.stream_mut(id)?.flow(direction);
        flow.trailers = Some(lowercase_names(trailers));
        flow.ended = true;
        if flow.stopped_all {
            flow.trailers_waiting = true;
            return Ok(Action::Pause);
        }
        let action = self.trailers_callback(direction, id)?;
        self.settle()?;
        Ok(action)
    }

    /// Runs `callback(id, count)`; the guest reaches the trailer map, and a
    /// body it buffers. `Continue` lets held headers, the buffered body and
    /// the trailers go on; `Pause` holds the trailers too.
    fn trailers_callback(&mut self, direction: Direction, id: u32) -> Result<Action, HarnessError> {
        let callback = match direction {
            Direction::Request => self.exports.request_trailers.clone(),
            Direction::Response => self.exports.response_trailers.clone(),
        };
        let flow = self.stream_mut(id)?.flow(direction);
        flow.trailers_live = true;
        let count = raw(flow.trailers.as_ref().map_or(0, Vec::len));
        let action = match callback {
            Some(f) => {
                self.record(id, f.name, vec![count]);
                let value = self.run(Phase::Callback, id, f, (id_raw(id), count))?;
                self.record_return(id, value);
                Action::from_raw(value)
            }
            None => Action::Continue,
        };
        let stream = self.stream_mut(id)?;
        match action {
            Action::Continue => {
                stream.flow(direction).trailers_live = false;
                stream.release(direction);
            }
            Action::Pause => stream.hold_trailers(direction),
        }
        Ok(action)
    }

    /// Acts on every `proxy_continue_stream` the last callback made, as
    /// Envoy does right after the callback returns (lowest context first).
    pub(super) fn settle(&mut self) -> Result<(), HarnessError> {
        loop {
            let next = self
                .store
                .data()
                .streams
                .iter()
                .filter_map(|(id, s)| {
                    if s.request.continue_requested {
                        Some((*id, 0))
                    } else if s.response.continue_requested {
                        Some((*id, 1))
                    } else {
                        None
                    }
                })
                .min();
            let Some((id, direction)) = next else {
                return Ok(());
            };
            let direction = if direction == 0 {
                Direction::Request
            } else {
                Direction::Response
            };
            self.continue_flow(id, direction)?;
        }
    }

    /// Envoy's `continueDecoding`/`continueEncoding`: a filter stopped for
    /// all frames gets its headers sent on, then one body callback with
    /// everything buffered (end of stream only if the body ended without
    /// trailers), then the trailers callback; otherwise held headers, the
    /// buffered body and held trailers go on.
    fn continue_flow(&mut self, id: u32, direction: Direction) -> Result<(), HarnessError> {
        let stream = self.stream_mut(id)?;
        stream.flow(direction).continue_requested = false;
        if stream.answered() {
            return Ok(());
        }
        let flow = stream.flow(direction);
        if !flow.stopped_all {
            stream.release(direction);
            return Ok(());
        }
        flow.stopped_all = false;
        flow.release_headers();
        let body = std::mem::take(&mut flow.body_waiting);
        let trailers = std::mem::take(&mut flow.trailers_waiting);
        let end_of_stream = flow.ended && !trailers;
        if body {
            self.body_callback(direction, id, end_of_stream)?;
            self.settle()?;
        }
        if trailers && !self.stream(id)?.answered() {
            self.trailers_callback(direction, id)?;
            self.settle()?;
        }
        Ok(())
    }

    /// Ends the stream: runs `proxy_on_done(id)`, `proxy_on_log(id)` and
    /// `proxy_on_delete(id)`, then forgets the context. Read the stream's
    /// state before calling this.
    pub fn complete(&mut self, id: u32) -> Result<(), HarnessError> {
        self.stream(id)?;
        self.finish(id)
    }

    /// Resets the stream, as when the client or the upstream resets it:
    /// nothing more goes on either way and no more body or trailers
    /// callbacks run; then `proxy_on_done(id)`, `proxy_on_log(id)` and
    /// `proxy_on_delete(id)` run and the context is forgotten. HTTP calls
    /// the context dispatched stay pending (Envoy makes them on the root
    /// context).
    pub fn reset(&mut self, id: u32) -> Result<(), HarnessError> {
        self.stream_mut(id)?.reset();
        self.finish(id)
    }

    fn finish(&mut self, id: u32) -> Result<(), HarnessError> {
        if let Some(done) = self.exports.done.clone() {
            self.record(id, done.name, Vec::new());
            let value = self.run(Phase::Callback, id, done, id_raw(id))?;
            self.record_return(id, value);
        }
        self.call1(id, self.exports.log.clone())?;
        self.call1(id, self.exports.delete.clone())?;
        self.store.data_mut().streams.remove(&id);
        self.settle()
    }
}
