//! HTTP/1.1 pieces both sides share: copying headers out of httparse, and
//! the client's response reader. Both are pure state over bytes, so they
//! are fuzzed apart from any socket; every length from the peer is checked
//! arithmetic, and nothing here holds more than one head.

/// The longest response head `talk --http` reads.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// The most header lines a response may carry.
const MAX_RESPONSE_HEADERS: usize = 128;
/// The longest chunk-size line (with extensions) or trailer line.
const MAX_CHUNK_LINE: usize = 4 * 1024;

/// Header names and values as text (values lossily, they are bytes).
pub fn header_pairs(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect()
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    /// Where the body starts in the bytes given.
    pub len: usize,
}

impl ResponseHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How the body that follows is delimited (RFC 9112 §6.3).
    pub fn framing(&self) -> Result<Framing, BodyError> {
        if (100..200).contains(&self.status) || self.status == 204 || self.status == 304 {
            return Ok(Framing::Length(0));
        }
        // Transfer-Encoding wins over Content-Length; the body is chunked
        // when chunked is the last coding, else it runs until the close.
        let codings: Vec<String> = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
            .flat_map(|(_, v)| v.split(','))
            .map(|c| c.trim().to_ascii_lowercase())
            .filter(|c| !c.is_empty())
            .collect();
        if let Some(last) = codings.last() {
            return Ok(if last == "chunked" {
                Framing::Chunked
            } else {
                Framing::UntilClose
            });
        }
        let mut length = None;
        // `Content-Length: 3, 3` is one length said twice (RFC 9110 8.6).
        for value in self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .flat_map(|(_, v)| v.split(','))
        {
            let value = value.trim();
            let parsed = (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
                .then(|| value.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| BodyError(format!("bad Content-Length '{value}'")))?;
            if length.is_some_and(|l| l != parsed) {
                return Err(BodyError("conflicting Content-Length headers".into()));
            }
            length = Some(parsed);
        }
        Ok(length.map_or(Framing::UntilClose, Framing::Length))
    }
}

/// Reads a response head from the bytes received so far: `Ok(None)` while
/// it is incomplete (and under [`MAX_RESPONSE_HEAD`]).
pub fn read_response_head(bytes: &[u8]) -> Result<Option<ResponseHead>, BodyError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(bytes) {
        Ok(httparse::Status::Partial) if bytes.len() > MAX_RESPONSE_HEAD => Err(BodyError(
            format!("the response head is over {MAX_RESPONSE_HEAD} bytes"),
        )),
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(len)) => Ok(Some(ResponseHead {
            status: response.code.unwrap_or(0),
            reason: response.reason.unwrap_or("").to_string(),
            headers: header_pairs(response.headers),
            len,
        })),
        Err(httparse::Error::TooManyHeaders) => Err(BodyError(format!(
            "the response has more than {MAX_RESPONSE_HEADERS} header lines"
        ))),
        Err(e) => Err(BodyError(format!("not an HTTP response: {e}"))),
    }
}

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    /// No length: the body ends when the server closes.
    UntilClose,
}

/// What is wrong with a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(pub String);

/// Decodes a body as it arrives, handing each decoded piece to a sink
/// without keeping it.
#[derive(Debug)]
pub struct BodyDecoder {
    state: State,
    /// A chunk-size or trailer line being read (bounded).
    line: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many body bytes still to come.
    Length(u64),
    UntilClose,
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    Trailers,
    Done,
}

impl BodyDecoder {
    pub fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        BodyDecoder {
            state,
            line: Vec::new(),
        }
    }

    /// The whole body has arrived; what follows is not part of it.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The server closed: is that where the body ends?
    pub fn finish(&self) -> Result<(), BodyError> {
        match self.state {
            State::Done | State::UntilClose => Ok(()),
            State::Length(left) => Err(BodyError(format!(
                "the body was cut short: {left} bytes missing"
            ))),
            _ => Err(BodyError("the chunked body was cut short".into())),
        }
    }

    /// Feeds bytes from the peer; the body's bytes go to `sink` as they
    /// are decoded. Bytes after the end of the body are ignored.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        sink: &mut impl FnMut(&[u8]),
    ) -> Result<(), BodyError> {
        while !input.is_empty() {
            match self.state {
                State::Done => return Ok(()),
                State::UntilClose => {
                    sink(input);
                    return Ok(());
                }
                State::Length(left) | State::ChunkData(left) => {
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                    sink(&input[..take]);
                    input = &input[take..];
                    let left = left - take as u64;
                    self.state = match (self.state, left) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), _) => State::Length(left),
                        (_, 0) => State::ChunkEnd,
                        _ => State::ChunkData(left),
                    };
                }
                State::ChunkSize | State::ChunkEnd | State::Trailers => {
                    let Some(line) = self.take_line(&mut input)? else {
                        return Ok(());
                    };
                    self.state = match self.state {
                        State::ChunkSize => match chunk_size(&line)? {
                            0 => State::Trailers,
                            size => State::ChunkData(size),
                        },
                        State::ChunkEnd if line.is_empty() => State::ChunkSize,
                        State::ChunkEnd => {
                            return Err(BodyError("a chunk is longer than its size".into()))
                        }
                        _ if line.is_empty() => State::Done,
                        _ => State::Trailers,
                    };
                }
            }
        }
        Ok(())
    }

    /// Takes one CRLF- (or LF-) ended line from `input`, keeping a partial
    /// one (bounded) for the next call.
    fn take_line(&mut self, input: &mut &[u8]) -> Result<Option<Vec<u8>>, BodyError> {
        let newline = input.iter().position(|&b| b == b'\n');
        let end = newline.unwrap_or(input.len());
        if self.line.len() + end > MAX_CHUNK_LINE {
            return Err(BodyError(format!(
                "a chunk-size or trailer line is over {MAX_CHUNK_LINE} bytes"
            )));
        }
        self.line.extend_from_slice(&input[..end]);
        let Some(at) = newline else {
            *input = &[];
            return Ok(None);
        };
        *input = &input[at + 1..];
        let mut line = std::mem::take(&mut self.line);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(Some(line))
    }
}

/// `1a2b;ext=1` → 0x1a2b, refusing anything that does not fit in 64 bits.
fn chunk_size(line: &[u8]) -> Result<u64, BodyError> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = digits.trim_ascii();
    let bad = || {
        BodyError(format!(
            "bad chunk size '{}'",
            String::from_utf8_lossy(&digits[..digits.len().min(32)])
        ))
    };
    if digits.is_empty() {
        return Err(bad());
    }
    digits.iter().try_fold(0u64, |size, &b| {
        let digit = (b as char).to_digit(16).ok_or_else(bad)?;
        size.checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(digit)))
            .ok_or_else(bad)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> ResponseHead {
        read_response_head(format!("HTTP/1.1 200 OK\r\n{text}\r\n").as_bytes())
            .unwrap()
            .unwrap()
    }

    /// Decodes `input` fed in pieces of `step` bytes.
    fn decode(framing: Framing, input: &[u8], step: usize) -> Result<(Vec<u8>, bool), BodyError> {
        let mut decoder = BodyDecoder::new(framing);
        let mut body = Vec::new();
        for piece in input.chunks(step.max(1)) {
            decoder.feed(piece, &mut |b| body.extend_from_slice(b))?;
        }
        Ok((body, decoder.is_done()))
    }

    #[test]
    fn heads_parse_and_wait_for_more() {
        assert_eq!(
            read_response_head(b"HTTP/1.1 200 OK\r\nContent-Len"),
            Ok(None)
        );
        let h = read_response_head(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc")
            .unwrap()
            .unwrap();
        assert_eq!((h.status, h.reason.as_str()), (404, "Not Found"));
        assert_eq!(h.framing(), Ok(Framing::Length(3)));
        assert!(read_response_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        let endless = [
            b"HTTP/1.1 200 OK\r\n".as_slice(),
            &[b'X'; MAX_RESPONSE_HEAD],
        ]
        .concat();
        assert!(read_response_head(&endless).is_err());
    }

    #[test]
    fn framing_follows_the_headers() {
        assert_eq!(
            head("Transfer-Encoding: chunked\r\n").framing(),
            Ok(Framing::Chunked)
        );
        assert_eq!(head("").framing(), Ok(Framing::UntilClose));
        assert!(head("Content-Length: -1\r\n").framing().is_err());
        assert!(head("Content-Length: 99999999999999999999999\r\n")
            .framing()
            .is_err());
        assert!(head("Content-Length: 1\r\nContent-Length: 2\r\n")
            .framing()
            .is_err());
        assert_eq!(
            head("Content-Length: 3, 3\r\n").framing(),
            Ok(Framing::Length(3))
        );
        assert!(head("Content-Length: 3, 4\r\n").framing().is_err());
        assert_eq!(
            head("Transfer-Encoding: chunked, gzip\r\n").framing(),
            Ok(Framing::UntilClose)
        );
        assert_eq!(
            head("Transfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n").framing(),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            head("Transfer-Encoding: notchunked\r\n").framing(),
            Ok(Framing::UntilClose)
        );
        let no_content = read_response_head(b"HTTP/1.1 204 No Content\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(no_content.framing(), Ok(Framing::Length(0)));
    }

    #[test]
    fn bodies_by_length_chunks_and_close_in_any_pieces() {
        for step in [1, 2, 3, 7, 64] {
            assert_eq!(
                decode(Framing::Length(3), b"abcdef", step),
                Ok((b"abc".to_vec(), true))
            );
            assert_eq!(
                decode(
                    Framing::Chunked,
                    b"3\r\nabc\r\n2;x=y\r\n\x00\xff\r\n0\r\nT: 1\r\n\r\nextra",
                    step
                ),
                Ok((b"abc\x00\xff".to_vec(), true))
            );
            assert_eq!(
                decode(Framing::UntilClose, b"until close", step),
                Ok((b"until close".to_vec(), false))
            );
        }
        let (_, done) = decode(Framing::Length(9), b"abc", 64).unwrap();
        assert!(!done);
    }

    #[test]
    fn hostile_chunk_sizes_are_errors_not_panics() {
        for size in [
            "ffffffffffffffff",
            "10000000000000000",
            "zz",
            "",
            "-1",
            "0x10",
        ] {
            let input = format!("{size}\r\nabc\r\n0\r\n\r\n");
            match decode(Framing::Chunked, input.as_bytes(), 5) {
                Err(_) => {}
                // The largest size is valid; the body is then cut short.
                Ok((body, done)) => assert!(!done && body.len() <= input.len(), "{size}"),
            }
        }
        assert!(decode(Framing::Chunked, b"3\r\nabcdef\r\n", 64).is_err());
        let endless_size = vec![b'1'; MAX_CHUNK_LINE + 1];
        assert!(decode(Framing::Chunked, &endless_size, 100).is_err());
        let mut decoder = BodyDecoder::new(Framing::Chunked);
        decoder.feed(b"5\r\nab", &mut |_| {}).unwrap();
        assert!(decoder.finish().is_err());
    }
}
