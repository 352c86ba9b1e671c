//! HTTP/1.x framing: where a request starts and ends, what it asks of the connection,
//! and how an answer is laid out. No sockets here; bytes in, bytes out.
//!
//! httparse does the tokenising; the rules that keep a pipelined stream in sync
//! (Content-Length, Transfer-Encoding, keep-alive) are ours.

use std::fmt;
use std::mem::MaybeUninit;
use std::time::{SystemTime, UNIX_EPOCH};

/// More header lines than this is a `431`.
pub const MAX_HEADERS: usize = 64;
/// A larger request body, however it is framed, is a `413`.
pub const MAX_BODY: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Other,
}

/// How the body that follows a head is framed (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No body: the next request starts right after the head.
    None,
    /// `Content-Length: N`, with `0 < N <= MAX_BODY`.
    Length(u64),
    /// `Transfer-Encoding: chunked`: its end is found by reading it ([`BodySkip`]).
    Chunked,
}

/// A parsed request head, borrowing the target from the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'b> {
    pub method: Method,
    /// The method as sent, for the request log.
    pub method_name: &'b str,
    pub target: &'b str,
    pub http10: bool,
    /// Whether the connection stays open after the answer (RFC 9112 §9.3).
    pub keep_alive: bool,
    /// The body that follows the head; read and discarded.
    pub body: Body,
}

/// A request we refuse. Every variant closes the connection: after any of them we can no
/// longer be sure where the next request would start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Malformed(httparse::Error),
    /// Not `1*DIGIT`, or too large to represent.
    BadContentLength,
    ConflictingContentLength,
    /// Both `Transfer-Encoding` and `Content-Length`: a request-smuggling shape.
    TransferEncodingAndLength,
    /// A `Transfer-Encoding` other than a lone `chunked`, more than one such line, or one in
    /// an HTTP/1.0 request (RFC 9112 §6.1, §6.3).
    BadTransferEncoding,
    /// The chunked framing broke the grammar of RFC 9112 §7.1; says where.
    BadChunk(&'static str),
    /// Chunk extensions and trailer fields together past the head's size limit.
    ChunkMetadataTooLarge,
    BodyTooLarge,
    HeadTooLarge,
    TooManyHeaders,
    UnsupportedVersion,
    /// Lines ending in CRLF and in bare LF in one head (see `mixes_line_ends`).
    MixedLineEnds,
    /// HTTP/1.1 without `Host`, or more than one (RFC 9112 §3.2).
    HostCount,
    /// A `Host` that is not `uri-host [ ":" port ]`.
    BadHost,
    /// A fragment, a byte outside visible ASCII, or a form the method does not allow.
    BadTarget,
    /// The head ended but could not be parsed as one (should not happen with httparse).
    Garbled,
}

impl Error {
    pub fn status(self) -> u16 {
        match self {
            Error::Malformed(_)
            | Error::BadContentLength
            | Error::ConflictingContentLength
            | Error::TransferEncodingAndLength
            | Error::BadTransferEncoding
            | Error::BadChunk(_)
            | Error::MixedLineEnds
            | Error::HostCount
            | Error::BadHost
            | Error::BadTarget
            | Error::Garbled => 400,
            Error::BodyTooLarge => 413,
            Error::HeadTooLarge | Error::TooManyHeaders | Error::ChunkMetadataTooLarge => 431,
            Error::UnsupportedVersion => 505,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Malformed(e) => write!(f, "malformed request: {e}"),
            Error::BadContentLength => f.write_str("invalid Content-Length"),
            Error::ConflictingContentLength => f.write_str("conflicting Content-Length headers"),
            Error::TransferEncodingAndLength => {
                f.write_str("both Transfer-Encoding and Content-Length")
            }
            Error::BadTransferEncoding => {
                f.write_str("Transfer-Encoding must be one line saying chunked, in HTTP/1.1")
            }
            Error::BadChunk(why) => write!(f, "bad chunked body: {why}"),
            Error::ChunkMetadataTooLarge => {
                f.write_str("chunk extensions and trailer fields too large")
            }
            Error::BodyTooLarge => write!(f, "request body larger than {MAX_BODY} bytes"),
            Error::HeadTooLarge => f.write_str("request head too large"),
            Error::TooManyHeaders => write!(f, "more than {MAX_HEADERS} header fields"),
            Error::UnsupportedVersion => f.write_str("only HTTP/1.0 and HTTP/1.1 are supported"),
            Error::MixedLineEnds => f.write_str("request head mixes CRLF and bare LF line ends"),
            Error::HostCount => f.write_str("an HTTP/1.1 request needs exactly one Host"),
            Error::BadHost => f.write_str("invalid Host"),
            Error::BadTarget => f.write_str("invalid request target"),
            Error::Garbled => f.write_str("request head not understood"),
        }
    }
}

/// Parses a request head at the start of `buf`. `Ok(None)`: not complete yet.
/// On success also returns the length of the head.
pub fn parse(buf: &[u8]) -> Result<Option<(Request<'_>, usize)>, Error> {
    // Uninitialised slots: zeroing 64 headers (2 KiB) per request cost more than parsing.
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Error::TooManyHeaders),
        Err(httparse::Error::Version) => {
            return match version_shape(buf) {
                Shape::WellFormed => Err(Error::UnsupportedVersion),
                Shape::Unfinished => Ok(None),
                Shape::Malformed => Err(Error::Malformed(httparse::Error::Version)),
            };
        }
        Err(e) => return Err(Error::Malformed(e)),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Ok(None); // unreachable for a complete head; treated as "need more"
    };
    if mixes_line_ends(&buf[..head_len], req.headers) {
        return Err(Error::MixedLineEnds);
    }
    check_target(method, target)?;
    let http10 = version == 0;

    let mut content_length = None;
    let mut transfer_encodings = 0;
    let mut chunked = false;
    let mut hosts = 0;
    let (mut close, mut keep_alive) = (false, false);
    for h in req.headers.iter() {
        // Only four names matter; their lengths (4, 10, 14, 17) rule out most others cheaply.
        if !matches!(h.name.len(), 4 | 10 | 14 | 17) {
            continue;
        }
        if h.name.eq_ignore_ascii_case("host") {
            hosts += 1;
            if !valid_host(h.value.trim_ascii()) {
                return Err(Error::BadHost);
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(h.value)?;
            if content_length.is_some_and(|old| old != n) {
                return Err(Error::ConflictingContentLength);
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encodings += 1;
            chunked = h.value.trim_ascii().eq_ignore_ascii_case(b"chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            for option in h.value.split(|&b| b == b',') {
                let option = option.trim_ascii();
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    // RFC 9112 §3.2: exactly one Host in HTTP/1.1; never more than one.
    if hosts > 1 || (hosts == 0 && !http10) {
        return Err(Error::HostCount);
    }
    let body = match (transfer_encodings, content_length) {
        (0, None | Some(0)) => Body::None,
        (0, Some(n)) if n > MAX_BODY => return Err(Error::BodyTooLarge),
        (0, Some(n)) => Body::Length(n),
        (_, Some(_)) => return Err(Error::TransferEncodingAndLength),
        (1, None) if chunked && !http10 => Body::Chunked,
        _ => return Err(Error::BadTransferEncoding),
    };
    let request = Request {
        method_name: method,
        method: match method {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            _ => Method::Other,
        },
        target,
        http10,
        keep_alive: if http10 { keep_alive && !close } else { !close },
        body,
    };
    Ok(Some((request, head_len)))
}

/// `Content-Length = 1*DIGIT`: no sign, no hex, no list, and representable.
fn parse_content_length(value: &[u8]) -> Result<u64, Error> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Error::BadContentLength);
    }
    digits.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(Error::BadContentLength)
    })
}

/// RFC 9112 §3.2: origin-form (`/path?query`), absolute-form (`http://h/path`), `*` for
/// OPTIONS only, authority-form for CONNECT only. Every byte visible ASCII, and no fragment:
/// `/get?name=i#x` would otherwise name the counter `i#x`.
fn check_target(method: &str, target: &str) -> Result<(), Error> {
    let visible = target.bytes().all(|b| TARGET_BYTES[usize::from(b)]);
    let form_fits = match target.as_bytes() {
        [b'/', ..] => true,
        b"*" => method == "OPTIONS",
        _ if method == "CONNECT" => true,
        _ => is_absolute(target),
    };
    if visible && form_fits {
        Ok(())
    } else {
        Err(Error::BadTarget)
    }
}

/// `scheme ":" …`, where `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn is_absolute(target: &str) -> bool {
    let Some((scheme, _)) = target.split_once(':') else {
        return false;
    };
    let mut bytes = scheme.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// `Host = uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2): an IP literal in
/// brackets or a reg-name (which covers IPv4), then optional digits. Not empty, and no
/// userinfo (`@`), path (`/`), list (`,`) or space: each of those means a client or a
/// front end that disagrees with us about which host is meant.
fn valid_host(value: &[u8]) -> bool {
    let (host_ok, port) = match value {
        [b'[', rest @ ..] => match rest.iter().position(|&b| b == b']') {
            Some(end) => {
                let literal = &rest[..end];
                let ok = !literal.is_empty()
                    && literal
                        .iter()
                        .all(|&b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
                    || ip_future(literal);
                (ok, &rest[end + 1..])
            }
            None => (false, &[][..]),
        },
        _ => {
            let end = value.iter().position(|&b| b == b':').unwrap_or(value.len());
            (
                !value[..end].is_empty() && reg_name(&value[..end]),
                &value[end..],
            )
        }
    };
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    host_ok && port_ok
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )`, but without `,`, which in a
/// field value reads as a list.
fn reg_name(name: &[u8]) -> bool {
    if !name.iter().all(|&b| REG_NAME_BYTES[usize::from(b)]) {
        return false;
    }
    // Rare: each `%` starts two hex digits.
    let mut escapes = name.iter().enumerate().filter(|&(_, &b)| b == b'%');
    escapes.all(|(i, _)| {
        name.get(i + 1..i + 3)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    })
}

/// A byte table per rule, as httparse keeps its own: one load per byte of every request.
macro_rules! byte_table {
    (|$b:ident| $accept:expr) => {{
        let mut table = [false; 256];
        let mut i = 0;
        while i < 256 {
            let $b = i as u8;
            table[i] = $accept;
            i += 1;
        }
        table
    }};
}

/// Bytes of a target: visible ASCII, and no `#`.
static TARGET_BYTES: [bool; 256] = byte_table!(|b| matches!(b, 0x21..=0x7e) && b != b'#');

/// Bytes of a reg-name: unreserved, sub-delims but `,`, and the `%` of an escape.
static REG_NAME_BYTES: [bool; 256] = byte_table!(|b| {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b';'
                | b'='
                | b'%'
        )
});

/// `IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`.
fn ip_future(literal: &[u8]) -> bool {
    let [b'v' | b'V', rest @ ..] = literal else {
        return false;
    };
    let Some(dot) = rest.iter().position(|&b| b == b'.') else {
        return false;
    };
    let (version, tail) = (&rest[..dot], &rest[dot + 1..]);
    !version.is_empty()
        && version.iter().all(u8::is_ascii_hexdigit)
        && !tail.is_empty()
        && tail
            .iter()
            .all(|&b| unreserved(b) || b == b':' || b"!$&'()*+,;=".contains(&b))
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Reads past a request body as it arrives, in any number of pieces, holding none of it:
/// a count for `Content-Length`, and for `chunked` a byte-at-a-time machine over the
/// grammar of RFC 9112 §7.1, so that its verdict on a prefix never changes either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodySkip {
    state: Skip,
    /// Chunk data so far, against [`MAX_BODY`].
    total: u64,
    /// Bytes of chunk extensions and trailer fields still allowed.
    metadata_left: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    /// `Content-Length` bytes still to come.
    Length(u64),
    /// In a chunk-size line: `digits` hex digits read so far, worth `size`.
    Size {
        digits: u8,
        size: u64,
    },
    /// In a chunk extension, up to the CR.
    Extension {
        size: u64,
    },
    /// The size line's CR has been read; its LF must follow.
    SizeLf {
        size: u64,
    },
    /// Chunk data still to come.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataCr,
    DataLf,
    /// At the start of a trailer line, or the empty line that ends the body.
    TrailerStart,
    /// In a trailer field line, up to the CR.
    Trailer,
    TrailerLf,
    /// The CR of the last, empty line has been read.
    LastLf,
    Done,
}

/// Hex digits in a chunk size before it is taken to overflow: 16 fill a `u64`.
const MAX_SIZE_DIGITS: u8 = 16;

impl BodySkip {
    /// The skipper for `body`, or `None` when there is nothing to skip. `max_metadata`
    /// bounds chunk extensions and trailer fields together (the head's own limit).
    pub fn new(body: Body, max_metadata: usize) -> Option<BodySkip> {
        let state = match body {
            Body::None => return None,
            Body::Length(n) => Skip::Length(n),
            Body::Chunked => Skip::Size { digits: 0, size: 0 },
        };
        Some(BodySkip {
            state,
            total: 0,
            metadata_left: max_metadata,
        })
    }

    pub fn is_done(&self) -> bool {
        self.state == Skip::Done
    }

    /// Skips what `buf` holds of the body. Returns the bytes consumed: all of `buf`, or
    /// fewer once the body has ended ([`BodySkip::is_done`]); the rest is the next request.
    pub fn skip(&mut self, buf: &[u8]) -> Result<usize, Error> {
        let mut i = 0;
        while i < buf.len() {
            // Data, counted or chunked, is skipped in bulk; the framing around it by byte.
            if let Skip::Length(left) | Skip::Data(left) = self.state {
                let n = left.min((buf.len() - i) as u64);
                i += n as usize;
                self.state = match (self.state, left - n) {
                    (Skip::Length(_), 0) => Skip::Done,
                    (Skip::Length(_), left) => Skip::Length(left),
                    (_, 0) => Skip::DataCr,
                    (_, left) => Skip::Data(left),
                };
                continue;
            }
            let b = buf[i];
            self.state = match self.state {
                // (Length and Data were handled above.)
                Skip::Done | Skip::Length(_) | Skip::Data(_) => break,
                Skip::Size { digits, size } => match b {
                    _ if b.is_ascii_hexdigit() => {
                        if digits == MAX_SIZE_DIGITS {
                            return Err(Error::BadChunk("chunk size overflows"));
                        }
                        let digit = u64::from((b as char).to_digit(16).unwrap_or(0));
                        Skip::Size {
                            digits: digits + 1,
                            size: size << 4 | digit,
                        }
                    }
                    _ if digits == 0 => return Err(Error::BadChunk("chunk size is not hex")),
                    b';' => Skip::Extension { size },
                    b'\r' => Skip::SizeLf { size },
                    _ => return Err(Error::BadChunk("junk after the chunk size")),
                },
                Skip::Extension { size } => match b {
                    b'\r' => Skip::SizeLf { size },
                    b'\n' => return Err(Error::BadChunk("bare LF in a chunk extension")),
                    _ => {
                        self.metadata(1)?;
                        Skip::Extension { size }
                    }
                },
                Skip::SizeLf { size } => match b {
                    b'\n' => self.chunk(size)?,
                    _ => return Err(Error::BadChunk("CR without LF after the chunk size")),
                },
                Skip::DataCr => match b {
                    b'\r' => Skip::DataLf,
                    _ => return Err(Error::BadChunk("chunk data not followed by CRLF")),
                },
                Skip::DataLf => match b {
                    b'\n' => Skip::Size { digits: 0, size: 0 },
                    _ => return Err(Error::BadChunk("chunk data not followed by CRLF")),
                },
                Skip::TrailerStart => match b {
                    b'\r' => Skip::LastLf,
                    b'\n' => return Err(Error::BadChunk("bare LF in the trailer section")),
                    _ => {
                        self.metadata(1)?;
                        Skip::Trailer
                    }
                },
                Skip::Trailer => match b {
                    b'\r' => Skip::TrailerLf,
                    b'\n' => return Err(Error::BadChunk("bare LF in a trailer field")),
                    _ => {
                        self.metadata(1)?;
                        Skip::Trailer
                    }
                },
                Skip::TrailerLf => match b {
                    b'\n' => Skip::TrailerStart,
                    _ => return Err(Error::BadChunk("CR without LF in a trailer field")),
                },
                Skip::LastLf => match b {
                    b'\n' => Skip::Done,
                    _ => return Err(Error::BadChunk("CR without LF at the end of the body")),
                },
            };
            i += 1;
        }
        Ok(i)
    }

    /// A whole size line has been read: on to its data, or to the trailer after the last.
    fn chunk(&mut self, size: u64) -> Result<Skip, Error> {
        if size == 0 {
            return Ok(Skip::TrailerStart);
        }
        self.total = self.total.saturating_add(size);
        if self.total > MAX_BODY {
            return Err(Error::BodyTooLarge);
        }
        Ok(Skip::Data(size))
    }

    fn metadata(&mut self, n: usize) -> Result<(), Error> {
        self.metadata_left = self
            .metadata_left
            .checked_sub(n)
            .ok_or(Error::ChunkMetadataTooLarge)?;
        Ok(())
    }
}

#[derive(Debug, PartialEq)]
enum Shape {
    /// `HTTP/DIGIT.DIGIT` and the end of the line: a version we do not speak (505).
    WellFormed,
    /// So far a prefix of `HTTP/DIGIT.DIGIT`: the verdict waits for more bytes.
    Unfinished,
    /// Not a version at all, like `HTTP/1.x` or `HTTP/11` (400).
    Malformed,
}

/// httparse says "bad version" both for `HTTP/2.0` (well-formed, unsupported: 505) and for
/// a version that is garbage (400), and says it as soon as it meets the first unexpected
/// byte. Telling the two apart may need the rest of the line; until it is here the answer
/// is "not yet", so a verdict on a prefix never changes as more bytes arrive.
fn version_shape(buf: &[u8]) -> Shape {
    let line_end = buf.iter().position(|&b| b == b'\r' || b == b'\n');
    let line = &buf[..line_end.unwrap_or(buf.len())];
    let Some(version) = line.splitn(3, |&b| b == b' ').nth(2) else {
        return Shape::Malformed;
    };
    const PATTERN: &[u8] = b"HTTP/0.0";
    let fits = |(i, &b): (usize, &u8)| match PATTERN[i] {
        b'0' => b.is_ascii_digit(),
        p => b == p,
    };
    if version.len() > PATTERN.len() || !version.iter().enumerate().all(fits) {
        Shape::Malformed
    } else if version.len() == PATTERN.len() && line_end.is_some() {
        Shape::WellFormed
    } else if line_end.is_some() {
        Shape::Malformed
    } else {
        Shape::Unfinished
    }
}

/// A head whose lines end in CRLF and bare LF both. Either alone is fine (bare LF is what
/// people type into `nc`), but a mix is the request-smuggling shape of llhttp's
/// CVE-2022-35256: a front end that only honours CRLF sees one header where we would see
/// two, and a request hidden in it.
fn mixes_line_ends(head: &[u8], headers: &[httparse::Header<'_>]) -> bool {
    // httparse has found every line already: each header name starts right after the end
    // of the line before it, and the head ends with the empty line. So the line ends are
    // known without another pass over the bytes: look at the byte before each `\n`.
    let crlf = |nl: usize| nl > 0 && head[nl - 1] == b'\r';
    let last = head.len() - 1; // the `\n` of the empty line
    let empty = if crlf(last) { last - 1 } else { last };
    let want = crlf(last);
    let ends = headers
        .iter()
        .map(|h| h.name.as_ptr() as usize - head.as_ptr() as usize)
        .chain(std::iter::once(empty))
        .map(|line_start| line_start - 1);
    ends.into_iter().any(|nl| crlf(nl) != want)
}

/// Finds the end of a request head (just past the empty line) in `buf`, starting the search
/// at `from`. Callers that receive a head in pieces pass back what was already searched,
/// so a head that trickles in byte by byte costs linear time, not quadratic.
pub fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(off) = buf.get(i..)?.iter().position(|&b| b == b'\n') {
        let nl = i + off;
        match buf.get(nl + 1..) {
            Some([b'\n', ..]) => return Some(nl + 2),
            Some([b'\r', b'\n', ..]) => return Some(nl + 3),
            _ => i = nl + 1,
        }
    }
    None
}

/// Where to resume [`find_head_end`] once `len` bytes have been searched in vain: the last
/// two bytes may be the start of a terminator that the next read completes.
pub fn resume_search_at(len: usize) -> usize {
    len.saturating_sub(2)
}

/// What an answer says beyond its status line.
pub struct Reply<'a> {
    pub status: u16,
    /// One extra header (`Allow`, `Retry-After`), already formatted.
    pub extra: Option<(&'static str, &'a [u8])>,
    /// The body, in pieces, so that callers need not build it in a buffer first.
    pub body: &'a [&'a [u8]],
    pub content_type: ContentType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    Text,
    /// `/dashboard`.
    Html,
    /// `/trace`.
    Json,
}

/// How the answer frames the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    pub keep_alive: bool,
    pub http10: bool,
    /// HEAD: headers as for GET, no body.
    pub head_only: bool,
}

impl Framing {
    /// For answers that end the connection (errors, rejects, timeouts).
    pub const CLOSE: Framing = Framing {
        keep_alive: false,
        http10: false,
        head_only: false,
    };
}

/// Appends one complete response to `out`. Header names are in canonical case: `ab`
/// matches them case-sensitively.
pub fn write_response(out: &mut Vec<u8>, reply: &Reply<'_>, framing: Framing, date: &HttpDate) {
    let body_len: usize = reply.body.iter().map(|p| p.len()).sum();
    let mut num = itoa::Buffer::new();
    let length = num.format(body_len).as_bytes();
    let connection: &[u8] = match (framing.keep_alive, framing.http10) {
        (false, _) => b"\r\nConnection: close",
        (true, true) => b"\r\nConnection: keep-alive",
        (true, false) => b"",
    };
    let content_type: &[u8] = match reply.content_type {
        ContentType::Text => b"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ",
        ContentType::Html => b"\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: ",
        ContentType::Json => b"\r\nContent-Type: application/json\r\nContent-Length: ",
    };
    out.extend_from_slice(status_line(reply.status).as_bytes());
    out.extend_from_slice(content_type);
    out.extend_from_slice(length);
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(date.as_bytes());
    out.extend_from_slice(connection);
    if let Some((name, value)) = reply.extra {
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
    }
    out.extend_from_slice(b"\r\n\r\n");
    if !framing.head_only {
        for piece in reply.body {
            out.extend_from_slice(piece);
        }
    }
}

/// One table for both the reason phrases and the whole status lines, which are written
/// in one copy each.
macro_rules! statuses {
    ($($code:literal $reason:literal,)*) => {
        /// The status line without its line end.
        fn status_line(status: u16) -> &'static str {
            match status {
                $($code => concat!("HTTP/1.1 ", $code, " ", $reason),)*
                _ => "HTTP/1.1 500 Internal Server Error",
            }
        }

        pub fn reason(status: u16) -> &'static str {
            match status {
                $($code => $reason,)*
                _ => "Unknown",
            }
        }
    };
}

statuses! {
    200 "OK",
    400 "Bad Request",
    404 "Not Found",
    405 "Method Not Allowed",
    408 "Request Timeout",
    409 "Conflict",
    413 "Content Too Large",
    429 "Too Many Requests",
    431 "Request Header Fields Too Large",
    501 "Not Implemented",
    503 "Service Unavailable",
    505 "HTTP Version Not Supported",
    507 "Insufficient Storage",
}

/// The `Date` header value, formatted at most once a second rather than per response.
pub struct HttpDate {
    secs: u64,
    text: [u8; 29],
}

impl HttpDate {
    pub fn new(now: SystemTime) -> HttpDate {
        let secs = unix_secs(now);
        HttpDate {
            secs,
            text: imf_fixdate(secs),
        }
    }

    pub fn update(&mut self, now: SystemTime) {
        let secs = unix_secs(now);
        if secs != self.secs {
            self.secs = secs;
            self.text = imf_fixdate(secs);
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.text
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 §5.6.7).
fn imf_fixdate(secs: u64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut t = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    t[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    two_digits(&mut t[5..7], day);
    t[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    let year = year.min(9999);
    two_digits(&mut t[12..14], year / 100);
    two_digits(&mut t[14..16], year % 100);
    two_digits(&mut t[17..19], rem / 3600);
    two_digits(&mut t[20..22], rem / 60 % 60);
    two_digits(&mut t[23..25], rem % 60);
    t
}

fn two_digits(dst: &mut [u8], n: u64) {
    dst[0] = b'0' + (n / 10 % 10) as u8;
    dst[1] = b'0' + (n % 10) as u8;
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ok(buf: &[u8]) -> (Request<'_>, usize) {
        parse(buf).expect("valid").expect("complete")
    }

    fn err(buf: &[u8]) -> u16 {
        parse(buf).expect_err("should be refused").status()
    }

    /// `GET / HTTP/1.1` with a Host and then `headers` (each ending in CRLF).
    fn with(headers: &str) -> String {
        format!("GET / HTTP/1.1\r\nHost: x\r\n{headers}\r\n")
    }

    #[test]
    fn simple_get() {
        let buf = b"GET /get?name=i HTTP/1.1\r\nHost: x\r\n\r\nNEXT";
        let (req, len) = ok(buf);
        assert_eq!(len, buf.len() - 4);
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.target, "/get?name=i");
        assert!(req.keep_alive && !req.http10);
        assert_eq!(req.body, Body::None);
    }

    #[test]
    fn partial_heads() {
        let full = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn keep_alive_rules() {
        let cases: &[(&[u8], bool)] = &[
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive, CLOSE\r\n\r\n",
                false,
            ),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
            (b"GET / HTTP/1.0\r\nconnection:  Keep-Alive \r\n\r\n", true),
            (
                b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
                false,
            ),
        ];
        for &(req, keep_alive) in cases {
            let text = String::from_utf8_lossy(req);
            assert_eq!(ok(req).0.keep_alive, keep_alive, "{text:?}");
        }
        assert!(ok(b"GET / HTTP/1.0\r\n\r\n").0.http10);
    }

    #[test]
    fn methods() {
        let cases: &[(&[u8], Method)] = &[
            (b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", Method::Head),
            (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", Method::Other),
            // Methods are case-sensitive.
            (b"get / HTTP/1.1\r\nHost: x\r\n\r\n", Method::Other),
        ];
        for &(req, method) in cases {
            assert_eq!(
                ok(req).0.method,
                method,
                "{:?}",
                String::from_utf8_lossy(req)
            );
        }
    }

    #[test]
    fn content_length() {
        let cases: &[(&str, Body)] = &[
            ("Content-Length: 5\r\n", Body::Length(5)),
            ("content-length: 0\r\n", Body::None),
            (
                "Content-Length: 3\r\nContent-Length: 3\r\n",
                Body::Length(3),
            ),
            ("Content-Length: 1048576\r\n", Body::Length(MAX_BODY)),
            ("Content-Length: 007\r\n", Body::Length(7)),
        ];
        for &(headers, body) in cases {
            assert_eq!(ok(with(headers).as_bytes()).0.body, body, "{headers:?}");
        }
        for bad in ["+5", "-1", "5,6", "0x10", "", " ", "5 5", "1e3", "５"] {
            let req = with(&format!("Content-Length: {bad}\r\n"));
            assert_eq!(err(req.as_bytes()), 400, "Content-Length: {bad:?}");
        }
        let conflict = with("Content-Length: 3\r\nContent-Length: 4\r\n");
        assert_eq!(
            parse(conflict.as_bytes()),
            Err(Error::ConflictingContentLength)
        );
    }

    #[test]
    fn body_size_limits() {
        let cases: &[(&str, u16)] = &[
            ("1048577", 413),
            ("18446744073709551615", 413), // u64::MAX: representable, too large
            // Too large to represent at all: malformed, not merely too large.
            ("18446744073709551616", 400),
            ("99999999999999999999", 400),
            ("99999999999999999999999999", 400),
        ];
        for &(value, status) in cases {
            let req = with(&format!("Content-Length: {value}\r\n"));
            assert_eq!(err(req.as_bytes()), status, "Content-Length: {value}");
        }
    }

    #[test]
    fn transfer_encoding() {
        let chunked = |headers: &str| ok(with(headers).as_bytes()).0.body;
        assert_eq!(chunked("Transfer-Encoding: chunked\r\n"), Body::Chunked);
        assert_eq!(chunked("transfer-encoding:  CHUNKED \r\n"), Body::Chunked);
        let cases: &[(&str, Error)] = &[
            ("Transfer-Encoding: gzip\r\n", Error::BadTransferEncoding),
            (
                "Transfer-Encoding: chunked, gzip\r\n",
                Error::BadTransferEncoding,
            ),
            (
                "Transfer-Encoding: gzip, chunked\r\n",
                Error::BadTransferEncoding,
            ),
            (
                "Transfer-Encoding: identity\r\n",
                Error::BadTransferEncoding,
            ),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                Error::BadTransferEncoding,
            ),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
                Error::BadTransferEncoding,
            ),
            (
                "Transfer-Encoding: xchunked\r\n",
                Error::BadTransferEncoding,
            ),
            (
                "Transfer-Encoding: chunked;x\r\n",
                Error::BadTransferEncoding,
            ),
            (
                "Transfer-Encoding: \"chunked\"\r\n",
                Error::BadTransferEncoding,
            ),
            ("Transfer-Encoding: chunk\r\n", Error::BadTransferEncoding),
            ("Transfer-Encoding:\r\n", Error::BadTransferEncoding),
            (
                "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
                Error::TransferEncodingAndLength,
            ),
            (
                "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
                Error::TransferEncodingAndLength,
            ),
        ];
        for &(headers, error) in cases {
            assert_eq!(parse(with(headers).as_bytes()), Err(error), "{headers:?}");
            assert_eq!(error.status(), 400);
        }
        let old = b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse(old), Err(Error::BadTransferEncoding));
    }

    #[test]
    fn host() {
        let valid = [
            "x",
            "example.com",
            "example.com:8000",
            "127.0.0.1",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8000",
            "[2001:db8::7]",
            "[v1.fe80::a+en1]",
            "a-b_c~d.e",
            "%41bc",
            "host:",    // an empty port is allowed by RFC 3986
            " spaced ", // leading and trailing whitespace is not part of the value
            "a!$&'()*+;=",
        ];
        for host in valid {
            let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
            assert!(
                parse(req.as_bytes()).is_ok_and(|r| r.is_some()),
                "Host: {host:?}"
            );
        }
        let invalid = [
            "",
            "user@x.example",
            "x.example/p",
            "x.example, y.example",
            "user@x.example/p, y.example",
            "a b",
            "x:y",
            "x:80:80",
            "[::1",
            "[]",
            "[::1]x",
            "[::g]",
            "%4",
            "%zz",
            "x\"",
            "exa\x7fmple",
        ];
        for host in invalid {
            let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
            assert!(
                matches!(
                    parse(req.as_bytes()),
                    Err(Error::BadHost | Error::Malformed(_))
                ),
                "Host: {host:?}"
            );
            assert_eq!(err(req.as_bytes()), 400, "Host: {host:?}");
        }
        let counts: &[(&[u8], Result<(), Error>)] = &[
            (b"GET /get?name=i HTTP/1.1\r\n\r\n", Err(Error::HostCount)),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
                Err(Error::HostCount),
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
                Err(Error::HostCount),
            ),
            (b"GET / HTTP/1.0\r\n\r\n", Ok(())), // HTTP/1.0 may omit it
            (
                b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
                Err(Error::HostCount),
            ),
            (b"GET / HTTP/1.0\r\nHost: a@b\r\n\r\n", Err(Error::BadHost)),
            // The absolute-form target names the host, but Host must still be valid.
            (
                b"GET http://h/get?name=x HTTP/1.1\r\nHost: other\r\n\r\n",
                Ok(()),
            ),
            (
                b"GET http://h/get?name=x HTTP/1.1\r\nHost: a@b\r\n\r\n",
                Err(Error::BadHost),
            ),
            (
                b"GET http://h/get?name=x HTTP/1.1\r\n\r\n",
                Err(Error::HostCount),
            ),
        ];
        for &(req, want) in counts {
            let got = parse(req).map(|r| assert!(r.is_some()));
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(req));
        }
    }

    #[test]
    fn targets() {
        let fine: &[(&str, &str)] = &[
            ("GET", "/"),
            ("GET", "/get?name=i"),
            ("GET", "/get?name=%E2%9C%93&x=a:b@c/d?e"),
            ("GET", "http://h/get?name=x"),
            ("GET", "HTTPS://h:8000/get?name=x"),
            ("OPTIONS", "*"),
            ("CONNECT", "h:443"),
        ];
        for &(method, target) in fine {
            let req = format!("{method} {target} HTTP/1.1\r\nHost: h\r\n\r\n");
            assert_eq!(ok(req.as_bytes()).0.target, target);
        }
        let bad: &[(&str, &[u8])] = &[
            ("GET", b"/get?name=i#frag"),
            ("GET", b"/#"),
            ("GET", b"http://h/get?name=x#y"),
            ("GET", b"*"),
            ("HEAD", b"*"),
            ("OPTIONS", b"*x"),
            ("GET", b"get?name=i"),
            ("GET", b"[::1]:443"), // authority-form is for CONNECT only
            ("GET", b"1http://h/"),
            ("GET", b"/get?name=\xc3\xa9"),
            ("GET", b"/\x80"),
            ("GET", b"/\xff"),
        ];
        for &(method, target) in bad {
            let mut req = format!("{method} ").into_bytes();
            req.extend_from_slice(target);
            req.extend_from_slice(b" HTTP/1.1\r\nHost: h\r\n\r\n");
            assert_eq!(
                err(&req),
                400,
                "{method} {:?}",
                String::from_utf8_lossy(target)
            );
        }
    }

    #[test]
    fn malformed() {
        for bad in [
            &b"GET\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: x\r\nNo colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n folded: x\r\n\r\n",
            b"G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / FOO/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        ] {
            assert_eq!(err(bad), 400, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn versions() {
        // Well-formed (HTTP/DIGIT.DIGIT), but not a version we speak.
        assert_eq!(err(b"GET / HTTP/2.0\r\n\r\n"), 505);
        assert_eq!(err(b"GET / HTTP/1.2\r\n\r\n"), 505);
        assert_eq!(err(b"GET / HTTP/9.9\n\n"), 505);
        // Not a version at all.
        for bad in [
            &b"GET / HTTP/1.x\r\n\r\n"[..],
            b"GET / HTTP/11\r\n\r\n",
            b"GET / HTTP/3\r\n\r\n",
            b"GET / HTTP/x.y\r\n\r\n",
            b"GET / HTTX/1.1\r\n\r\n",
            b"GET / HTTP/2.00\r\n\r\n",
            b"GET / HTTP/2 trailing junk\r\n\r\n",
            b"GET / http/1.1\r\n\r\n",
            b"GET / HTTP/1.x",
        ] {
            assert_eq!(err(bad), 400, "{:?}", String::from_utf8_lossy(bad));
        }
        // Until the line ends, `HTTP/2` may still become `HTTP/2.0`: no verdict yet, and
        // the verdict once it comes is the one the whole line gets.
        for partial in [&b"GET / HTTP/2"[..], b"GET / HTTP/2.", b"GET / HTTP/2.0"] {
            assert_eq!(parse(partial), Ok(None));
        }
        assert_eq!(err(b"GET / HTTP/2.0\r"), 505);
    }

    #[test]
    fn line_ends() {
        // All CRLF, or all bare LF (typed into nc): fine.
        assert_eq!(ok(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").1, 27);
        assert_eq!(ok(b"GET / HTTP/1.1\nHost: x\n\n").1, 24);
        // A mix is the smuggling shape of llhttp's CVE-2022-35256.
        let smuggle = b"GET / HTTP/1.1\r\nHost: x\r\nDummy: x\nContent-Length: 23\r\n\r\n\
                        GET / HTTP/1.1\r\nX: \r\n\r\n";
        assert_eq!(err(smuggle), 400);
        for mixed in [
            &b"GET / HTTP/1.1\nHost: x\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: x\n\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n\n",
            b"GET / HTTP/1.1\r\n\n",
        ] {
            assert_eq!(err(mixed), 400, "{:?}", String::from_utf8_lossy(mixed));
        }
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nA: b\nB: c\r\n\r\n").unwrap_err(),
            Error::MixedLineEnds
        );
    }

    #[test]
    fn too_many_headers() {
        let mut req = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 1..MAX_HEADERS {
            req.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        let mut at_limit = req.clone();
        at_limit.extend_from_slice(b"\r\n");
        assert!(ok(&at_limit).0.keep_alive);
        req.extend_from_slice(b"X-last: y\r\n\r\n");
        assert_eq!(err(&req), 431);
    }

    /// Skips a chunked body given in one piece: the bytes it used, or the error.
    fn skip_chunked(body: &[u8]) -> Result<Option<usize>, Error> {
        let mut skip = BodySkip::new(Body::Chunked, 64).unwrap();
        let used = skip.skip(body)?;
        Ok(skip.is_done().then_some(used))
    }

    #[test]
    fn chunked_bodies_that_end() {
        let cases: &[&[u8]] = &[
            b"0\r\n\r\n",
            b"5\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            b"A\r\n0123456789\r\n0\r\n\r\n",
            b"a\r\n0123456789\r\n0000\r\n\r\n",
            b"5;ext=1\r\nhello\r\n0;last\r\n\r\n",
            b"5;a=\"q s\";b\r\nhello\r\n0\r\n\r\n",
            b"0\r\nTrailer: x\r\nOther: y\r\n\r\n",
            b"3\r\n\r\n\r\r\n0\r\n\r\n", // data is data, CR and LF included
            b"0000000000000001\r\nx\r\n0\r\n\r\n",
        ];
        for &body in cases {
            let mut with_next = body.to_vec();
            with_next.extend_from_slice(b"GET / HTTP/1.1\r\n");
            let what = String::from_utf8_lossy(body);
            assert_eq!(skip_chunked(&with_next), Ok(Some(body.len())), "{what:?}");
            // The same verdict for every way of cutting it, a byte at a time included.
            for cut in 0..body.len() {
                let mut skip = BodySkip::new(Body::Chunked, 64).unwrap();
                assert_eq!(skip.skip(&body[..cut]), Ok(cut), "{what:?} cut at {cut}");
                assert!(!skip.is_done(), "{what:?} ended early at {cut}");
                assert_eq!(skip.skip(&with_next[cut..]), Ok(body.len() - cut));
                assert!(skip.is_done());
            }
        }
    }

    #[test]
    fn chunked_bodies_that_are_refused() {
        let cases: &[(&[u8], u16)] = &[
            (b"x\r\n", 400),
            (b"-5\r\nhello\r\n0\r\n\r\n", 400),
            (b"+5\r\nhello\r\n0\r\n\r\n", 400),
            (b"0x5\r\nhello\r\n0\r\n\r\n", 400),
            (b" 5\r\nhello\r\n0\r\n\r\n", 400),
            (b"5 \r\nhello\r\n0\r\n\r\n", 400),
            (b"5\t\r\nhello\r\n0\r\n\r\n", 400),
            (b"\r\nhello\r\n0\r\n\r\n", 400),
            (b"5\nhello\r\n0\r\n\r\n", 400),
            (b"5\rhello\r\n0\r\n\r\n", 400),
            (b"5\r\nhelloX\r\n0\r\n\r\n", 400),
            (b"5\r\nhello\n0\r\n\r\n", 400),
            (b"5\r\nhello\r0\r\n\r\n", 400),
            (b"5\r\nhello\r\n0\r\n\n", 400),
            (b"5\r\nhello\r\n0\n\r\n", 400),
            (b"0\r\nTrailer: x\n\r\n", 400),
            (b"0\r\nTrailer: x\r\r\n", 400),
            (b"0\r\n\rX", 400),
            (b"5;ext\nhello\r\n0\r\n\r\n", 400),
            (b"10000000000000000\r\n", 400), // 17 hex digits: overflows u64
            (b"FFFFFFFFFFFFFFFFF\r\n", 400),
            (b"100001\r\n", 413), // one chunk past 1 MiB
            (b"80000\r\n", 0),    // half of it: fine so far
        ];
        for &(body, status) in cases {
            let what = String::from_utf8_lossy(body);
            match skip_chunked(body) {
                Err(e) => assert_eq!(e.status(), status, "{what:?}: {e}"),
                Ok(_) => assert_eq!(status, 0, "{what:?} was accepted"),
            }
        }
        // Past 1 MiB in total over many chunks.
        let mut skip = BodySkip::new(Body::Chunked, 64).unwrap();
        let chunk = [b"FFFF\r\n".as_slice(), &[b'z'; 0xFFFF], b"\r\n"].concat();
        let refused = (0..17).find_map(|_| skip.skip(&chunk).err());
        assert_eq!(refused, Some(Error::BodyTooLarge));
        // Extensions and trailers share the head's limit (64 here).
        let long_ext = format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(65));
        assert_eq!(
            skip_chunked(long_ext.as_bytes()),
            Err(Error::ChunkMetadataTooLarge)
        );
        let long_trailer = format!("0\r\nT: {}\r\n\r\n", "t".repeat(62));
        assert_eq!(
            skip_chunked(long_trailer.as_bytes()),
            Err(Error::ChunkMetadataTooLarge)
        );
    }

    #[test]
    fn counted_bodies_end_where_they_say() {
        let mut skip = BodySkip::new(Body::Length(5), 64).unwrap();
        assert_eq!(skip.skip(b"abc"), Ok(3));
        assert!(!skip.is_done());
        assert_eq!(skip.skip(b"deGET"), Ok(2));
        assert!(skip.is_done());
        assert_eq!(BodySkip::new(Body::None, 64), None);
    }

    #[test]
    fn head_end_search() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\n", 0), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\nX", 0), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n", 0), None);
        assert_eq!(find_head_end(b"\n", 0), None);
        // Resuming where an earlier search stopped finds a terminator split across reads.
        let whole = b"GET / HTTP/1.1\r\nA: b\r\n\r\n";
        for cut in 0..whole.len() {
            let from = if find_head_end(&whole[..cut], 0).is_none() {
                resume_search_at(cut)
            } else {
                0
            };
            assert_eq!(find_head_end(whole, from), Some(whole.len()), "cut {cut}");
        }
    }

    fn render(reply: &Reply<'_>, framing: Framing) -> String {
        let date = HttpDate::new(UNIX_EPOCH + Duration::from_secs(784_111_777));
        let mut out = Vec::new();
        write_response(&mut out, reply, framing, &date);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn status_lines_carry_their_own_code_and_reason() {
        for status in [
            200, 400, 404, 405, 408, 409, 413, 429, 431, 501, 503, 505, 507,
        ] {
            assert_ne!(reason(status), "Unknown");
            assert_eq!(
                status_line(status),
                format!("HTTP/1.1 {status} {}", reason(status))
            );
        }
        assert_eq!(reason(299), "Unknown");
    }

    #[test]
    fn response_layout() {
        let ka = Framing {
            keep_alive: true,
            http10: false,
            head_only: false,
        };
        let reply = Reply {
            status: 200,
            extra: None,
            body: &[b"x: ", b"1", b"\n"],
            content_type: ContentType::Text,
        };
        assert_eq!(
            render(&reply, ka),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\n\
             Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\nx: 1\n"
        );
        let head = Framing {
            head_only: true,
            ..ka
        };
        assert!(
            render(&reply, head)
                .ends_with("Content-Length: 5\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n")
        );
        let ka10 = Framing { http10: true, ..ka };
        assert!(render(&reply, ka10).contains("\r\nConnection: keep-alive\r\n"));
        let allow = Reply {
            status: 405,
            extra: Some(("Allow", b"GET, HEAD")),
            body: &[],
            content_type: ContentType::Text,
        };
        let text = render(&allow, Framing::CLOSE);
        assert!(text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(text.contains("\r\nConnection: close\r\nAllow: GET, HEAD\r\n\r\n"));
    }

    #[test]
    fn dates() {
        let at = |s| String::from_utf8(imf_fixdate(s).to_vec()).unwrap();
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(at(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(1_798_761_599), "Thu, 31 Dec 2026 23:59:59 GMT");
        assert_eq!(at(4_107_542_400), "Mon, 01 Mar 2100 00:00:00 GMT");
        let mut d = HttpDate::new(UNIX_EPOCH);
        d.update(UNIX_EPOCH + Duration::from_millis(86_400_500));
        assert_eq!(d.as_bytes(), b"Fri, 02 Jan 1970 00:00:00 GMT");
    }
}
