//! The per-request fault header `x-chaosgate-fault`, so a test can force one fault on one
//! request: `status=429`, `status=429,kind=insufficient_quota`, `status=529`,
//! `delay=200ms`, `hang`, `reset`, `headers_then_silence`, `slow_body=200`,
//! `cut_after=5`, `error_after=3`, `malformed_after=2`, `no_terminal`,
//! `ping_stall_after=2`, `stall_after=2`, `retry_after=2s`. Items are comma-separated and
//! combine (`delay=1s,status=503`).
//!
//! The stream faults (`cut_after`, `error_after`, `malformed_after`, `ping_stall_after`,
//! `stall_after`, `no_terminal`) only exist on a streamed request: the mock refuses them
//! on a plain one with a 400 naming the item ([`stream_item_name`]) rather than serve a
//! complete answer counted as a stream fault; `GET /health` ignores them.

use crate::provider::ErrorKind;
use crate::time::{Dur, Nanos};

/// The header name.
pub const HEADER: &str = "x-chaosgate-fault";

/// A parsed fault header.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Forced {
    /// Answer with this status (and kind).
    pub status: Option<u16>,
    /// Error kind (default from the status).
    pub kind: Option<ErrorKind>,
    /// `retry-after` to send with the error.
    pub retry_after: Option<Nanos>,
    /// Extra delay before anything is sent.
    pub delay: Nanos,
    /// A connection fault.
    pub connection: Option<super::profile::ConnectionKind>,
    /// `slow_body` rate.
    pub bytes_per_s: Option<u32>,
    /// A stream fault.
    pub stream: Option<(super::profile::StreamKind, u32)>,
}

/// The header item that forces a stream fault of `kind` (`cut_after`, `no_terminal`, …).
pub fn stream_item_name(kind: super::profile::StreamKind) -> &'static str {
    use super::profile::StreamKind as S;
    match kind {
        S::Cut => "cut_after",
        S::Error => "error_after",
        S::Malformed => "malformed_after",
        S::PingStall => "ping_stall_after",
        S::SilentStall => "stall_after",
        S::NoTerminal => "no_terminal",
    }
}

fn kind_from_str(s: &str) -> Result<ErrorKind, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
        format!(
            "unknown error kind {s:?} (expected one of bad_request, context_length, authentication, billing, permission, not_found, request_too_large, rate_limit, insufficient_quota, server, bad_gateway, unavailable, timeout, overloaded)"
        )
    })
}

impl std::str::FromStr for Forced {
    type Err = String;
    fn from_str(s: &str) -> Result<Forced, String> {
        use super::profile::{ConnectionKind as C, StreamKind as S};
        let mut f = Forced::default();
        let num = |k: &str, v: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| format!("`{k}` needs a whole number, got {v:?}"))
        };
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (k, v) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (item, None),
            };
            match (k, v) {
                ("status", Some(v)) => {
                    let st: u16 = v.parse().map_err(|_| format!("`status` needs an HTTP status, got {v:?}"))?;
                    if !(400..=599).contains(&st) {
                        return Err(format!("`status` must be 400–599, got {st}"));
                    }
                    f.status = Some(st);
                }
                ("kind", Some(v)) => f.kind = Some(kind_from_str(v)?),
                ("retry_after", Some(v)) => f.retry_after = Some(v.parse::<Dur>()?.0),
                ("delay", Some(v)) => f.delay = v.parse::<Dur>()?.0,
                ("hang", None) => f.connection = Some(C::Hang),
                ("reset", None) => f.connection = Some(C::Reset),
                ("headers_then_silence", None) => f.connection = Some(C::HeadersThenSilence),
                ("slow_body", Some(v)) => {
                    let b = num(k, v)?;
                    if b == 0 {
                        return Err("`slow_body` must be > 0 bytes/s".into());
                    }
                    f.connection = Some(C::SlowBody);
                    f.bytes_per_s = Some(b);
                }
                ("cut_after", Some(v)) => f.stream = Some((S::Cut, num(k, v)?)),
                ("error_after", Some(v)) => f.stream = Some((S::Error, num(k, v)?)),
                ("malformed_after", Some(v)) => f.stream = Some((S::Malformed, num(k, v)?)),
                ("ping_stall_after", Some(v)) => f.stream = Some((S::PingStall, num(k, v)?)),
                ("stall_after", Some(v)) => f.stream = Some((S::SilentStall, num(k, v)?)),
                ("no_terminal", None) => f.stream = Some((S::NoTerminal, 0)),
                _ => {
                    return Err(format!(
                        "unknown fault {item:?} in {HEADER} (expected status=N, kind=K, retry_after=D, delay=D, hang, reset, headers_then_silence, slow_body=N, cut_after=N, error_after=N, malformed_after=N, ping_stall_after=N, stall_after=N, no_terminal)"
                    ))
                }
            }
        }
        if f.kind.is_some() && f.status.is_none() {
            return Err("`kind` needs a `status`".into());
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::profile::{ConnectionKind, StreamKind};

    #[test]
    fn parses_the_documented_forms() {
        let f: Forced = "status=429,kind=insufficient_quota".parse().unwrap();
        assert_eq!((f.status, f.kind), (Some(429), Some(ErrorKind::InsufficientQuota)));
        let f: Forced = "delay=200ms".parse().unwrap();
        assert_eq!(f.delay, 200_000_000);
        assert_eq!("hang".parse::<Forced>().unwrap().connection, Some(ConnectionKind::Hang));
        assert_eq!(
            "cut_after=5".parse::<Forced>().unwrap().stream,
            Some((StreamKind::Cut, 5))
        );
        assert_eq!(
            "error_after=3".parse::<Forced>().unwrap().stream,
            Some((StreamKind::Error, 3))
        );
        assert_eq!(
            "malformed_after=2".parse::<Forced>().unwrap().stream,
            Some((StreamKind::Malformed, 2))
        );
    }

    #[test]
    fn rejects_with_a_useful_message() {
        assert!("status=200".parse::<Forced>().unwrap_err().contains("400–599"));
        assert!("cut_after=x".parse::<Forced>().unwrap_err().contains("whole number"));
        assert!("explode".parse::<Forced>().unwrap_err().contains("unknown fault"));
        assert!("status=500,kind=nope"
            .parse::<Forced>()
            .unwrap_err()
            .contains("unknown error kind"));
        assert!("kind=server"
            .parse::<Forced>()
            .unwrap_err()
            .contains("needs a `status`"));
    }

    #[test]
    fn stream_item_names_parse_back_to_their_kind() {
        use StreamKind as S;
        for k in [
            S::Cut,
            S::Error,
            S::Malformed,
            S::PingStall,
            S::SilentStall,
            S::NoTerminal,
        ] {
            let name = stream_item_name(k);
            let item = if k == S::NoTerminal {
                name.to_string()
            } else {
                format!("{name}=2")
            };
            assert_eq!(item.parse::<Forced>().unwrap().stream.map(|s| s.0), Some(k), "{item}");
        }
    }
}
