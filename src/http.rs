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
/// A larger `Content-Length` body is a `413`.
pub const MAX_BODY: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Other,
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
    /// Body bytes that follow the head; read and discarded.
    pub body_len: u64,
}

/// A request we refuse. Every variant closes the connection: after any of them we can no
/// longer be sure where the next request would start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Malformed(httparse::Error),
    BadContentLength,
    ConflictingContentLength,
    /// Both `Transfer-Encoding` and `Content-Length`: a request-smuggling shape.
    TransferEncodingAndLength,
    TransferEncoding,
    BodyTooLarge,
    HeadTooLarge,
    TooManyHeaders,
    UnsupportedVersion,
    /// Lines ending in CRLF and in bare LF in one head (see `mixes_line_ends`).
    MixedLineEnds,
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
            | Error::MixedLineEnds
            | Error::Garbled => 400,
            Error::BodyTooLarge => 413,
            Error::HeadTooLarge | Error::TooManyHeaders => 431,
            Error::TransferEncoding => 501,
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
            Error::TransferEncoding => f.write_str("Transfer-Encoding is not supported"),
            Error::BodyTooLarge => write!(f, "request body larger than {MAX_BODY} bytes"),
            Error::HeadTooLarge => f.write_str("request head too large"),
            Error::TooManyHeaders => write!(f, "more than {MAX_HEADERS} header fields"),
            Error::UnsupportedVersion => f.write_str("only HTTP/1.0 and HTTP/1.1 are supported"),
            Error::MixedLineEnds => f.write_str("request head mixes CRLF and bare LF line ends"),
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

    let mut content_length = None;
    let mut transfer_encoding = false;
    let (mut close, mut keep_alive) = (false, false);
    for h in req.headers.iter() {
        // Only three names matter; their lengths (14, 17, 10) rule out most others cheaply.
        if !matches!(h.name.len(), 10 | 14 | 17) {
            continue;
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(h.value)?;
            if content_length.is_some_and(|old| old != n) {
                return Err(Error::ConflictingContentLength);
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
        } else if h.name.eq_ignore_ascii_case("connection") {
            for option in h.value.split(|&b| b == b',') {
                let option = option.trim_ascii();
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    if transfer_encoding {
        return Err(if content_length.is_some() {
            Error::TransferEncodingAndLength
        } else {
            Error::TransferEncoding
        });
    }
    let body_len = content_length.unwrap_or(0);
    if body_len > MAX_BODY {
        return Err(Error::BodyTooLarge);
    }
    let http10 = version == 0;
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
        body_len,
    };
    Ok(Some((request, head_len)))
}

/// `Content-Length = 1*DIGIT`: no sign, no hex, no list. Huge values saturate (and are
/// then refused as too large rather than as malformed).
fn parse_content_length(value: &[u8]) -> Result<u64, Error> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Error::BadContentLength);
    }
    Ok(digits.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
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

    #[test]
    fn simple_get() {
        let buf = b"GET /get?name=i HTTP/1.1\r\nHost: x\r\n\r\nNEXT";
        let (req, len) = ok(buf);
        assert_eq!(len, buf.len() - 4);
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.target, "/get?name=i");
        assert!(req.keep_alive && !req.http10);
        assert_eq!(req.body_len, 0);
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
        let ka = |b: &[u8]| ok(b).0.keep_alive;
        assert!(ka(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nConnection: Keep-Alive, CLOSE\r\n\r\n"
        ));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nconnection:  Keep-Alive \r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"
        ));
        assert!(ok(b"GET / HTTP/1.0\r\n\r\n").0.http10);
    }

    #[test]
    fn methods() {
        assert_eq!(ok(b"HEAD / HTTP/1.1\r\n\r\n").0.method, Method::Head);
        assert_eq!(ok(b"POST / HTTP/1.1\r\n\r\n").0.method, Method::Other);
        // Methods are case-sensitive.
        assert_eq!(ok(b"get / HTTP/1.1\r\n\r\n").0.method, Method::Other);
    }

    #[test]
    fn content_length() {
        assert_eq!(
            ok(b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n")
                .0
                .body_len,
            5
        );
        assert_eq!(
            ok(b"GET / HTTP/1.1\r\ncontent-length: 0\r\n\r\n")
                .0
                .body_len,
            0
        );
        let same = b"GET / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(ok(same).0.body_len, 3);
        assert_eq!(
            ok(b"GET / HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n")
                .0
                .body_len,
            MAX_BODY
        );
        for bad in ["+5", "-1", "5,6", "0x10", "", " ", "5 5", "1e3", "５"] {
            let req = format!("GET / HTTP/1.1\r\nContent-Length: {bad}\r\n\r\n");
            assert_eq!(err(req.as_bytes()), 400, "Content-Length: {bad:?}");
        }
        let conflict = b"GET / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n";
        assert_eq!(parse(conflict), Err(Error::ConflictingContentLength));
    }

    #[test]
    fn body_too_large() {
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n"),
            413
        );
        let huge = b"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n";
        assert_eq!(err(huge), 413);
    }

    #[test]
    fn transfer_encoding() {
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            501
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            501
        );
        let both = b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(err(both), 400);
        let both = b"GET / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(err(both), 400);
    }

    #[test]
    fn malformed() {
        for bad in [
            &b"GET\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nNo colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET / HTTP/1.1\r\n folded: x\r\n\r\n",
            b"G\x01T / HTTP/1.1\r\n\r\n",
            b"GET / FOO/1.1\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\n\r\n",
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
        let smuggle =
            b"GET / HTTP/1.1\r\nDummy: x\nContent-Length: 23\r\n\r\nGET / HTTP/1.1\r\nX: \r\n\r\n";
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
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            req.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        let mut at_limit = req.clone();
        at_limit.extend_from_slice(b"\r\n");
        assert!(ok(&at_limit).0.keep_alive);
        req.extend_from_slice(b"X-last: y\r\n\r\n");
        assert_eq!(err(&req), 431);
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
