//! A verdict's wire timeline: when the response head, each content token, the fault and
//! the end go out, as offsets from the request's arrival. One owner of these facts: the
//! mock *plays* a [`Wire`] (`mock/respond.rs`), the simulator *schedules* it after settling
//! it against the gateway's limits (`gateway/attempt.rs`), and `profile-stats` *observes*
//! it as a client would.
//!
//! The shape of a stream: the head and the preamble (OpenAI's role chunk; Anthropic's
//! `message_start`, `content_block_start`, `ping`) at once, then `tokens` content tokens
//! at `first_token + i · interval`, then the end. A plain answer: the head and the body
//! at `first` (a `slow_body` trickles the body on from there).

use super::{StreamKind, Success, Verdict};
use crate::provider::ErrorKind;
use crate::time::{Nanos, NS_PER_S};

/// Pause between the last bytes before a cut and the cut itself, so that they reach the
/// wire first (the mock sleeps this long before it aborts the connection).
pub const CUT_FLUSH: Nanos = 5_000_000;

/// Largest piece of a `slow_body` trickle, in bytes.
pub const SLOW_PIECE_MAX: usize = 64 * 1024;

/// How the body (or the connection) ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The body ends cleanly at `at` (a stream after its terminal event).
    Complete {
        /// When.
        at: Nanos,
    },
    /// A stream's finish chunks, then a clean end without the terminal event.
    NoTerminal {
        /// When.
        at: Nanos,
    },
    /// An in-band error event at `at`, then a clean end.
    InBandError {
        /// When.
        at: Nanos,
        /// The error's kind.
        kind: ErrorKind,
    },
    /// A chunk whose JSON is cut short at `at`, then a clean end (no terminal event).
    Malformed {
        /// When.
        at: Nanos,
    },
    /// The connection is closed at `at`: before the head a reset, after it a cut stream.
    Abort {
        /// When.
        at: Nanos,
    },
    /// Nothing more after the last token (keep-alive pings every `pings` if set, from the
    /// last token on): only a timeout ends it.
    Silence {
        /// Gap between pings.
        pings: Option<Nanos>,
    },
}

/// What one verdict sends and when, from the request's arrival.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wire {
    /// The response head: when, and its status (`None`: none is ever sent).
    pub head: Option<(Nanos, u16)>,
    /// A stream's preamble goes out with the head (the body is an event stream).
    pub preamble: bool,
    /// Streams: when the first content token goes out (meaningful when `tokens > 0`).
    pub first_token: Nanos,
    /// Streams: gap between consecutive content tokens.
    pub interval: Nanos,
    /// Streams: content tokens sent (per choice).
    pub tokens: u32,
    /// The end.
    pub end: End,
}

impl Wire {
    /// The timeline of `v` for a request that asked to stream (`stream`) or not. `plain_len`
    /// is the byte length of a plain success's body (it only matters under `slow_body`).
    #[inline]
    pub fn of(v: &Verdict, stream: bool, plain_len: u64) -> Wire {
        let none = |end| Wire {
            head: None,
            preamble: false,
            first_token: 0,
            interval: 0,
            tokens: 0,
            end,
        };
        match v {
            Verdict::Reset { after } => none(End::Abort { at: *after }),
            Verdict::Hang => none(End::Silence { pings: None }),
            Verdict::HeadersThenSilence { after } => Wire {
                head: Some((*after, 200)),
                ..none(End::Silence { pings: None })
            },
            Verdict::Error(e) => Wire {
                head: Some((e.after, e.status)),
                ..none(End::Complete { at: e.after })
            },
            Verdict::Ok(s) if !stream => Wire {
                head: Some((s.first, 200)),
                ..none(End::Complete {
                    at: plain_end(s, plain_len),
                })
            },
            Verdict::Ok(s) => Wire::stream(s),
        }
    }

    /// When content token `i` (from 0) goes out.
    #[inline]
    pub fn token_at(&self, i: u32) -> Nanos {
        self.first_token
            .saturating_add(self.interval.saturating_mul(u64::from(i)))
    }

    /// When the last content token goes out (the first token's time when none is sent:
    /// what follows the tokens is timed from there).
    #[inline]
    pub fn last_token_at(&self) -> Nanos {
        self.token_at(self.tokens.saturating_sub(1))
    }

    /// When the end happens (`None`: silence, it never does by itself).
    pub fn end_at(&self) -> Option<Nanos> {
        match self.end {
            End::Complete { at }
            | End::NoTerminal { at }
            | End::InBandError { at, .. }
            | End::Malformed { at }
            | End::Abort { at } => Some(at),
            End::Silence { .. } => None,
        }
    }
}

impl Wire {
    /// A streamed success's timeline: how many tokens go out before the fault, and when
    /// the fault and the end come.
    #[inline]
    pub fn stream(s: &Success) -> Wire {
        let tokens = match s.stream_fault {
            None => s.output_tokens,
            // every token and the finish chunks: only the terminal event is missing
            Some(f) if f.kind == StreamKind::NoTerminal => s.output_tokens,
            Some(f) => f.after_tokens.min(s.output_tokens),
        };
        let mut w = Wire {
            head: Some((0, 200)),
            preamble: true,
            first_token: s.first,
            interval: s.token_interval,
            tokens,
            end: End::Silence { pings: None },
        };
        let last = w.last_token_at();
        w.end = match s.stream_fault {
            None => End::Complete { at: last },
            Some(f) => match f.kind {
                StreamKind::NoTerminal => End::NoTerminal { at: last },
                StreamKind::Cut => End::Abort {
                    at: last.saturating_add(CUT_FLUSH),
                },
                StreamKind::Error => End::InBandError {
                    at: last,
                    kind: f.error,
                },
                StreamKind::Malformed => End::Malformed { at: last },
                StreamKind::PingStall => End::Silence {
                    pings: Some(f.ping_every.max(1)),
                },
                StreamKind::SilentStall => End::Silence { pings: None },
            },
        };
        w
    }
}

/// A plain body's trickle under `slow_body`: the piece size in bytes and the gap between
/// pieces.
pub fn slow_pieces(bytes_per_s: u32) -> (usize, Nanos) {
    let bps = bytes_per_s.max(1);
    let piece = (bps as usize / 10).clamp(1, SLOW_PIECE_MAX);
    (piece, NS_PER_S * piece as u64 / u64::from(bps))
}

/// When a plain success's body ends: at `first`, or under `slow_body` when its last piece
/// goes out.
fn plain_end(s: &Success, len: u64) -> Nanos {
    match s.slow_body_bytes_per_s {
        None => s.first,
        Some(bps) => {
            let (piece, gap) = slow_pieces(bps);
            let pieces = len.div_ceil(piece as u64).max(1);
            s.first.saturating_add(gap.saturating_mul(pieces - 1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{ErrorVerdict, StreamFault};

    fn ok(first: Nanos, interval: Nanos, tokens: u32, fault: Option<(StreamKind, u32)>) -> Verdict {
        Verdict::Ok(Success {
            first,
            token_interval: interval,
            output_tokens: tokens,
            stream_fault: fault.map(|(kind, after_tokens)| StreamFault {
                kind,
                after_tokens,
                error: ErrorKind::Overloaded,
                ping_every: 300,
            }),
            slow_body_bytes_per_s: None,
            rate_limit: None,
        })
    }

    #[test]
    fn a_stream_sends_every_token_then_completes_at_the_last() {
        let w = Wire::of(&ok(200, 20, 20, None), true, 0);
        assert_eq!(w.head, Some((0, 200)));
        assert_eq!((w.tokens, w.token_at(0), w.last_token_at()), (20, 200, 200 + 19 * 20));
        assert_eq!(w.end, End::Complete { at: 580 });
    }

    /// The case: TTFT 200 ms, 50 tokens/s, 20 tokens, `no_terminal`: every token
    /// goes out, the body ends cleanly at 580 ms without `[DONE]`.
    #[test]
    fn no_terminal_sends_every_token_and_ends_at_the_last() {
        let ms = 1_000_000;
        let w = Wire::of(&ok(200 * ms, 20 * ms, 20, Some((StreamKind::NoTerminal, 3))), true, 0);
        assert_eq!(w.tokens, 20);
        assert_eq!(w.end, End::NoTerminal { at: 580 * ms });
    }

    #[test]
    fn faults_after_n_tokens_come_at_the_nth_token_and_a_cut_after_its_flush() {
        let w = Wire::of(&ok(100, 10, 50, Some((StreamKind::Cut, 3))), true, 0);
        assert_eq!((w.tokens, w.end), (3, End::Abort { at: 120 + CUT_FLUSH }));
        let w = Wire::of(&ok(100, 10, 50, Some((StreamKind::Error, 0))), true, 0);
        assert_eq!(
            (w.tokens, w.end),
            (
                0,
                End::InBandError {
                    at: 100,
                    kind: ErrorKind::Overloaded
                }
            )
        );
        let w = Wire::of(&ok(100, 10, 50, Some((StreamKind::Malformed, 60))), true, 0);
        assert_eq!((w.tokens, w.end), (50, End::Malformed { at: 590 }));
        let w = Wire::of(&ok(100, 10, 50, Some((StreamKind::PingStall, 2))), true, 0);
        assert_eq!((w.tokens, w.end), (2, End::Silence { pings: Some(300) }));
    }

    #[test]
    fn plain_answers_errors_resets_and_hangs() {
        let w = Wire::of(&ok(700, 10, 50, Some((StreamKind::Cut, 3))), false, 100);
        assert_eq!((w.head, w.end), (Some((700, 200)), End::Complete { at: 700 }));
        let e = Verdict::Error(ErrorVerdict {
            after: 40,
            status: 503,
            kind: ErrorKind::Overloaded,
            retry_after: None,
            message: None,
            rate_limit: None,
            envelope: crate::fault::Envelope::Provider,
        });
        assert_eq!(Wire::of(&e, true, 0).head, Some((40, 503)));
        assert_eq!(
            Wire::of(&Verdict::Reset { after: 9 }, true, 0),
            Wire {
                head: None,
                preamble: false,
                first_token: 0,
                interval: 0,
                tokens: 0,
                end: End::Abort { at: 9 }
            }
        );
        assert_eq!(Wire::of(&Verdict::Hang, false, 0).end_at(), None);
        let w = Wire::of(&Verdict::HeadersThenSilence { after: 5 }, true, 0);
        assert_eq!((w.head, w.end_at()), (Some((5, 200)), None));
    }

    /// 1,000 bytes at 100 B/s: pieces of 10 bytes every 100 ms, the 100th at 9.9 s.
    #[test]
    fn slow_body_ends_with_its_last_piece() {
        let v = match ok(50, 0, 10, None) {
            Verdict::Ok(mut s) => {
                s.slow_body_bytes_per_s = Some(100);
                Verdict::Ok(s)
            }
            v => v,
        };
        assert_eq!(slow_pieces(100), (10, NS_PER_S / 10));
        let w = Wire::of(&v, false, 1_000);
        assert_eq!(
            w.end,
            End::Complete {
                at: 50 + 99 * NS_PER_S / 10
            }
        );
    }
}
