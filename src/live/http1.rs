//! HTTP/1.1 framing shared by the reference gateway's two sides — its client to the
//! upstreams ([`crate::live::upstream`]) and its server to the clients
//! ([`crate::live::front`]) — and the load client's own connections
//! ([`crate::live::load`]'s closed-loop users). One decoder of message bodies
//! (content-length, chunked, until close), one writer of decimal lengths, one reader of
//! `connection` tokens.

use bytes::{Buf, Bytes, BytesMut};
use std::io;

/// Longest chunk-size (or trailer) line.
pub(crate) const MAX_LINE: usize = 4096;

/// A malformed message.
pub(crate) fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// A message cut short.
pub(crate) fn cut(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, msg.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// `remaining` bytes of a content-length body.
    Length(u64),
    /// Chunked: expecting a size line.
    ChunkSize,
    /// Chunked: `remaining` data bytes of the current chunk.
    ChunkData(u64),
    /// Chunked: the CRLF after a chunk's data.
    ChunkEnd,
    /// Chunked: trailer lines until an empty one.
    Trailers,
    /// Until the peer closes.
    UntilClose,
    /// Over.
    Done,
}

/// Where a message body's decoding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decoder {
    state: State,
}

impl Decoder {
    /// A body of `n` bytes.
    pub(crate) fn length(n: u64) -> Decoder {
        Decoder {
            state: if n == 0 { State::Done } else { State::Length(n) },
        }
    }

    /// A chunked body.
    pub(crate) fn chunked() -> Decoder {
        Decoder {
            state: State::ChunkSize,
        }
    }

    /// A body that ends when the peer closes.
    pub(crate) fn until_close() -> Decoder {
        Decoder {
            state: State::UntilClose,
        }
    }

    /// No body.
    pub(crate) fn done() -> Decoder {
        Decoder { state: State::Done }
    }

    /// Whether every byte of the body has been decoded.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the body ends when the peer closes.
    pub(crate) fn is_until_close(&self) -> bool {
        self.state == State::UntilClose
    }

    /// Marks the body over (the peer closed a body that ends so, or it broke).
    pub(crate) fn finish(&mut self) {
        self.state = State::Done;
    }

    /// Decodes what `buf` holds, taking the body's bytes and framing off its front: the
    /// data found (`None`: none yet; at the end, [`Decoder::is_done`]). What follows the
    /// body stays in `buf`.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<Bytes>> {
        let mut out: Option<BytesMut> = None;
        let take = |piece: BytesMut, out: &mut Option<BytesMut>| match out {
            None => *out = Some(piece),
            Some(o) => o.extend_from_slice(&piece),
        };
        loop {
            match self.state {
                State::Done => break,
                State::UntilClose => {
                    if !buf.is_empty() {
                        let n = buf.len();
                        take(buf.split_to(n), &mut out);
                    }
                    break;
                }
                State::Length(n) => {
                    if buf.is_empty() {
                        break;
                    }
                    let k = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                    take(buf.split_to(k), &mut out);
                    let left = n - k as u64;
                    self.state = if left == 0 { State::Done } else { State::Length(left) };
                }
                State::ChunkData(n) => {
                    if buf.is_empty() {
                        break;
                    }
                    let k = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                    take(buf.split_to(k), &mut out);
                    let left = n - k as u64;
                    self.state = if left == 0 {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(left)
                    };
                }
                State::ChunkEnd => {
                    if buf.len() < 2 {
                        break;
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(bad("missing CRLF after a chunk"));
                    }
                    buf.advance(2);
                    self.state = State::ChunkSize;
                }
                State::ChunkSize | State::Trailers => {
                    let Some(p) = memchr::memchr(b'\n', buf) else {
                        if buf.len() > MAX_LINE {
                            return Err(bad("chunk-size line too long"));
                        }
                        // a size line that cannot become one fails now, not when its
                        // line ends (which may be never)
                        let digits = buf.iter().take_while(|b| b.is_ascii_hexdigit()).count();
                        if self.state == State::ChunkSize && (digits > 16 || (digits == 0 && !buf.is_empty())) {
                            return Err(bad("bad chunk size"));
                        }
                        break;
                    };
                    if p == 0 || buf[p - 1] != b'\r' {
                        return Err(bad("bad line ending in chunked body"));
                    }
                    let line = &buf[..p - 1];
                    if self.state == State::Trailers {
                        let empty = line.is_empty();
                        buf.advance(p + 1);
                        if empty {
                            self.state = State::Done;
                        }
                        continue;
                    }
                    let digits = line.split(|&b| b == b';').next().unwrap_or(&[]).trim_ascii();
                    if digits.is_empty() || digits.len() > 16 {
                        return Err(bad("bad chunk size"));
                    }
                    let mut size = 0u64;
                    for &d in digits {
                        let v = char::from(d).to_digit(16).ok_or_else(|| bad("bad chunk size"))?;
                        size = size << 4 | u64::from(v);
                    }
                    buf.advance(p + 1);
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::ChunkData(size)
                    };
                }
            }
        }
        Ok(out.map(BytesMut::freeze))
    }
}

/// A body's pieces gathered into one: the first kept as it came (no copy while it is the
/// only one), the later ones copied after it.
#[derive(Debug, Default)]
pub(crate) struct Gather {
    one: Bytes,
    more: BytesMut,
}

impl Gather {
    /// Bytes gathered so far.
    pub(crate) fn len(&self) -> usize {
        self.one.len() + self.more.len()
    }

    /// Adds the next piece.
    pub(crate) fn push(&mut self, d: Bytes) {
        if self.one.is_empty() && self.more.is_empty() {
            self.one = d;
        } else {
            if self.more.is_empty() {
                self.more.extend_from_slice(&std::mem::take(&mut self.one));
            }
            self.more.extend_from_slice(&d);
        }
    }

    /// Everything gathered, in one piece.
    pub(crate) fn finish(self) -> Bytes {
        if self.more.is_empty() {
            self.one
        } else {
            self.more.freeze()
        }
    }
}

/// Appends `n` in decimal.
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut k = digits.len();
    loop {
        k -= 1;
        digits[k] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[k..]);
}

/// What a `connection` header's tokens say: `Some(false)` for `close`, `Some(true)` for
/// `keep-alive`, `None` for neither (the last such token wins).
pub(crate) fn connection_tokens(value: &[u8]) -> Option<bool> {
    let mut said = None;
    for tok in value.split(|&b| b == b',') {
        let tok = tok.trim_ascii();
        if tok.eq_ignore_ascii_case(b"close") {
            return Some(false);
        } else if tok.eq_ignore_ascii_case(b"keep-alive") {
            said = Some(true);
        }
    }
    said
}

/// Whether a `transfer-encoding` value ends in `chunked` (the only coding whose end a
/// reader can find).
pub(crate) fn ends_in_chunked(value: &[u8]) -> bool {
    value
        .rsplit(|&b| b == b',')
        .next()
        .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `wire` fed in two pieces split at `at`: the body, whether it ended, what is left.
    fn decode_split(mut dec: Decoder, wire: &[u8], at: usize) -> io::Result<(Vec<u8>, bool, Vec<u8>)> {
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        for piece in [&wire[..at], &wire[at..]] {
            buf.extend_from_slice(piece);
            while let Some(d) = dec.decode(&mut buf)? {
                body.extend_from_slice(&d);
            }
        }
        Ok((body, dec.is_done(), buf.to_vec()))
    }

    #[test]
    fn chunked_and_length_bodies_decode_whatever_the_split_and_leave_what_follows() {
        let wire = b"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        for at in 0..=wire.len() {
            let (body, done, rest) = decode_split(Decoder::chunked(), wire, at).unwrap();
            assert_eq!(body, b"hello0123456789", "split at {at}");
            assert!(done, "split at {at}");
            assert_eq!(rest, b"NEXT", "split at {at}");
        }
        for at in 0..=9 {
            let (body, done, rest) = decode_split(Decoder::length(5), b"helloNEXT", at).unwrap();
            assert_eq!(
                (body.as_slice(), done, rest.as_slice()),
                (&b"hello"[..], true, &b"NEXT"[..])
            );
        }
    }

    #[test]
    fn a_size_line_that_cannot_become_one_fails_before_its_line_ends() {
        // the regression: a JSON body sent as chunked waited for a line end that never
        // came (until the body timeout) instead of failing at its first byte
        for bad_start in [&b"{\"model\""[..], b"+5", b"g", b"12345678901234567"] {
            let e = decode_split(Decoder::chunked(), bad_start, 0).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{bad_start:?}");
        }
        for bad_line in [&b"+5\r\n"[..], b"5 x\r\n", b"\r\n", b"5\n", b"12345678901234567\r\n"] {
            assert!(decode_split(Decoder::chunked(), bad_line, 0).is_err(), "{bad_line:?}");
        }
        // a size line still on its way is not an error
        let (body, done, _) = decode_split(Decoder::chunked(), b"ff", 1).unwrap();
        assert!(body.is_empty() && !done);
    }

    #[test]
    fn gathered_pieces_come_out_as_one_and_a_lone_piece_is_not_copied() {
        let lone = Bytes::from_static(b"only");
        let mut g = Gather::default();
        g.push(lone.clone());
        assert_eq!(g.len(), 4);
        assert_eq!(g.finish().as_ptr(), lone.as_ptr());
        let mut g = Gather::default();
        for p in ["ab", "", "cde", "f"] {
            g.push(Bytes::from(p));
        }
        assert_eq!((g.len(), g.finish().as_ref()), (6, &b"abcdef"[..]));
        assert!(Gather::default().finish().is_empty());
    }

    #[test]
    fn connection_tokens_and_codings_read_as_their_rfc_says() {
        assert_eq!(connection_tokens(b"keep-alive"), Some(true));
        assert_eq!(connection_tokens(b"Keep-Alive, Close"), Some(false));
        assert_eq!(connection_tokens(b"upgrade"), None);
        assert!(ends_in_chunked(b"gzip, Chunked "));
        assert!(!ends_in_chunked(b"chunked, gzip"));
        let mut v = Vec::new();
        push_decimal(&mut v, 0);
        push_decimal(&mut v, 1_234_567);
        assert_eq!(v, b"01234567");
    }
}
