//! Numbers of the proxy-wasm ABI v0.2.1 the host speaks (statuses, enums,
//! the header-map wire format).

/// `proxy_result_t`: the statuses hostcalls return. Only the ones the spec
/// lists for each call are ever returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    InvalidMemoryAccess = 6,
    Empty = 7,
    CasMismatch = 8,
}

impl Status {
    pub(crate) fn code(self) -> i32 {
        self as i32
    }
}

/// What a stream callback asks the host to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `0`: let the data go on (to the upstream, or downstream).
    Continue,
    /// `1`: stop iteration; for bodies, buffer until end of stream.
    Pause,
}

impl Action {
    pub(crate) fn from_raw(raw: i32) -> Self {
        if raw == 0 {
            Action::Continue
        } else {
            Action::Pause
        }
    }
}

/// `proxy_log_level_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

impl LogLevel {
    pub(crate) fn from_raw(raw: i32) -> Option<Self> {
        Some(match raw {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }
}

/// `proxy_metric_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter = 0,
    Gauge = 1,
    Histogram = 2,
}

impl MetricType {
    pub(crate) fn from_raw(raw: i32) -> Option<Self> {
        Some(match raw {
            0 => MetricType::Counter,
            1 => MetricType::Gauge,
            2 => MetricType::Histogram,
            _ => return None,
        })
    }
}

/// `proxy_buffer_type_t`.
pub(crate) mod buffer {
    pub const HTTP_REQUEST_BODY: i32 = 0;
    pub const HTTP_RESPONSE_BODY: i32 = 1;
    pub const HTTP_CALL_RESPONSE_BODY: i32 = 4;
    pub const VM_CONFIGURATION: i32 = 6;
    pub const PLUGIN_CONFIGURATION: i32 = 7;
    pub const MAX: i32 = 8;
}

/// `proxy_map_type_t`.
pub(crate) mod map {
    pub const HTTP_REQUEST_HEADERS: i32 = 0;
    pub const HTTP_REQUEST_TRAILERS: i32 = 1;
    pub const HTTP_RESPONSE_HEADERS: i32 = 2;
    pub const HTTP_RESPONSE_TRAILERS: i32 = 3;
    pub const HTTP_CALL_RESPONSE_HEADERS: i32 = 6;
    pub const HTTP_CALL_RESPONSE_TRAILERS: i32 = 7;
}

/// `proxy_stream_type_t`.
pub(crate) mod stream {
    pub const HTTP_REQUEST: i32 = 0;
    pub const HTTP_RESPONSE: i32 = 1;
    pub const DOWNSTREAM: i32 = 2;
    pub const UPSTREAM: i32 = 3;
}

/// Header pairs as the ABI carries them.
pub type Headers = Vec<(String, String)>;

/// Serializes header pairs: u32 count, then u32 key length and u32 value
/// length per pair, then each key and value followed by a NUL byte (all
/// integers little-endian).
pub fn encode_pairs(pairs: &[(String, String)]) -> Vec<u8> {
    let size = 4 + pairs
        .iter()
        .map(|(k, v)| 8 + k.len() + v.len() + 2)
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&len_u32(pairs.len()).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&len_u32(k.len()).to_le_bytes());
        out.extend_from_slice(&len_u32(v.len()).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Parses the wire format of [`encode_pairs`]; `None` when malformed. An
/// empty buffer is an empty map (what guests send for no pairs).
pub fn decode_pairs(bytes: &[u8]) -> Option<Headers> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let word = |at: usize| -> Option<usize> {
        let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(raw)).ok()
    };
    let count = word(0)?;
    let mut sizes = Vec::with_capacity(count.min(1024));
    for i in 0..count {
        let at = 4 + i.checked_mul(8)?;
        sizes.push((word(at)?, word(at + 4)?));
    }
    let mut at = 4 + count.checked_mul(8)?;
    let mut take = |len: usize| -> Option<String> {
        let text = bytes.get(at..at.checked_add(len)?)?;
        let text = String::from_utf8_lossy(text).into_owned();
        at = at.checked_add(len + 1)?;
        Some(text)
    };
    let mut pairs = Vec::with_capacity(sizes.len());
    for (k, v) in sizes {
        let key = take(k)?;
        let value = take(v)?;
        pairs.push((key, value));
    }
    Some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_in_the_documented_layout() {
        let pairs = vec![("a".to_owned(), "xy".to_owned())];
        let bytes = encode_pairs(&pairs);
        assert_eq!(
            bytes,
            [1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, b'a', 0, b'x', b'y', 0]
        );
        assert_eq!(decode_pairs(&bytes), Some(pairs));
        assert_eq!(decode_pairs(&[]), Some(vec![]));
        assert_eq!(decode_pairs(&[1, 0, 0, 0, 9]), None);
    }
}
