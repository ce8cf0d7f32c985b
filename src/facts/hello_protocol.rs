//! The hello protocol's bytes, for both sides: the greeting, how a byte
//! stream is cut into messages, the replies, and the word that ends a
//! session. `serve hello` answers with these; `talk` speaks them.
//!
//! A message is a line (`\n` or `\r\n`, stripped), or the bytes a client
//! sent without a newline before going quiet: the server decides when the
//! client is quiet and calls [`Framer::flush`].

use std::time::Duration;

/// What the server sends on connect.
pub const WELCOME: &[u8] = b"welcome!";

/// The message that closes the connection without a reply.
pub const EXIT: &[u8] = b"exit";

/// The most a message may hold. A server buffers at most this much of one
/// connection's input, whatever the client sends.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// What the server says before closing on a client that sent more than
/// [`MAX_MESSAGE`] bytes without a newline.
pub const TOO_LONG: &[u8] = b"error: message over 65536 bytes without a newline; closing\n";

/// How long a client must be quiet before bytes it sent without a newline
/// count as a message. Long enough that a line split across packets stays
/// one line, short enough that the classic client gets its reply at once.
pub const QUIET: Duration = Duration::from_millis(25);

/// The reply to message M over TCP, in pieces so a large M is written from
/// where it lies: `hello,` M `!` (and a newline when M came as a line).
pub fn reply_parts(body: &[u8], line: bool) -> [&[u8]; 3] {
    [b"hello,", body, if line { b"!\n" } else { b"!" }]
}

/// `Hello, M!` for a datagram M.
pub fn datagram_reply(body: &[u8]) -> Vec<u8> {
    let mut reply = Vec::with_capacity(body.len() + 8);
    reply.extend_from_slice(b"Hello, ");
    reply.extend_from_slice(body);
    reply.push(b'!');
    reply
}

/// One message: where its body lies in the framer's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    start: usize,
    end: usize,
    /// Ended by a newline: the reply ends with one too.
    pub line: bool,
}

/// The client sent more than [`MAX_MESSAGE`] bytes without a newline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

/// Cuts a byte stream into messages, one at a time, holding at most one
/// message's worth of input: the caller reads only [`Framer::room`] bytes,
/// so a client that sends faster than it reads replies waits in the kernel,
/// not in memory.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    /// Bytes before this are answered.
    start: usize,
    /// Bytes before this hold no newline.
    scanned: usize,
}

impl Framer {
    /// How many bytes may be read now.
    pub fn room(&self) -> usize {
        (MAX_MESSAGE + 1).saturating_sub(self.buf.len() - self.start)
    }

    /// Adds bytes read from the client (at most [`Framer::room`]).
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        let take = data.len().min(self.room());
        self.buf.extend_from_slice(&data[..take]);
    }

    /// The next complete line, if one has arrived; `Err` once more than
    /// [`MAX_MESSAGE`] bytes wait without a newline.
    pub fn next_line(&mut self) -> Result<Option<Message>, TooLong> {
        let pending = &self.buf[self.scanned..];
        match pending.iter().position(|&b| b == b'\n') {
            Some(at) => {
                let newline = self.scanned + at;
                let mut end = newline;
                if end > self.start && self.buf[end - 1] == b'\r' {
                    end -= 1;
                }
                let message = Message {
                    start: self.start,
                    end,
                    line: true,
                };
                self.start = newline + 1;
                self.scanned = self.start;
                Ok(Some(message))
            }
            None => {
                self.scanned = self.buf.len();
                if self.buf.len() - self.start > MAX_MESSAGE {
                    Err(TooLong)
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// The client went quiet (or closed): what it sent without a newline
    /// is a message.
    pub fn flush(&mut self) -> Option<Message> {
        if !self.has_partial() {
            return None;
        }
        let message = Message {
            start: self.start,
            end: self.buf.len(),
            line: false,
        };
        self.start = self.buf.len();
        self.scanned = self.start;
        Some(message)
    }

    /// The body of a message returned by the last call.
    pub fn body(&self, message: Message) -> &[u8] {
        &self.buf[message.start..message.end]
    }

    /// Whether bytes without a newline are waiting.
    pub fn has_partial(&self) -> bool {
        self.buf.len() > self.start
    }

    /// Once every message is answered, gives the buffer back: an idle
    /// connection holds no memory.
    pub fn release(&mut self) {
        if !self.has_partial() {
            self.buf = Vec::new();
            self.start = 0;
            self.scanned = 0;
        }
    }
}

/// Whether a message is `exit`.
pub fn is_exit(body: &[u8]) -> bool {
    body == EXIT
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every message of `chunks`, with `line`, as the server sees them.
    fn messages(chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut framer = Framer::default();
        let mut out = Vec::new();
        for chunk in chunks {
            let mut chunk: &[u8] = chunk;
            while !chunk.is_empty() {
                let take = chunk.len().min(framer.room());
                framer.push(&chunk[..take]);
                chunk = &chunk[take..];
                while let Some(m) = framer.next_line().unwrap() {
                    out.push((framer.body(m).to_vec(), m.line));
                }
            }
        }
        if let Some(m) = framer.flush() {
            out.push((framer.body(m).to_vec(), m.line));
        }
        out
    }

    #[test]
    fn lines_and_raw_messages() {
        let got = messages(&[b"Michael\nTracy\r\nSar", b"ah"]);
        assert_eq!(
            got,
            [
                (b"Michael".to_vec(), true),
                (b"Tracy".to_vec(), true),
                (b"Sarah".to_vec(), false)
            ]
        );
        assert_eq!(reply_parts(b"Michael", true).concat(), b"hello,Michael!\n");
        assert_eq!(reply_parts(b"Sarah", false).concat(), b"hello,Sarah!");
    }

    #[test]
    fn exit_and_bytes() {
        assert!(is_exit(&messages(&[b"exit"])[0].0));
        assert!(is_exit(&messages(&[b"exit\r\n"])[0].0));
        assert!(!is_exit(&messages(&[b"exits\n"])[0].0));
        assert_eq!(messages(&[b"\xff\x00\xfe\n"])[0].0, b"\xff\x00\xfe");
        assert_eq!(messages(&[b"\n"])[0].0, b"");
        assert_eq!(messages(&[b"\r\n"])[0].0, b"");
    }

    #[test]
    fn input_is_bounded_whatever_arrives() {
        let mut framer = Framer::default();
        framer.push(&vec![b'x'; 3 * MAX_MESSAGE]);
        assert_eq!(framer.room(), 0);
        assert_eq!(framer.next_line(), Err(TooLong));
        // Exactly the bound, then a newline: one message.
        let mut exact = Framer::default();
        exact.push(&vec![b'y'; MAX_MESSAGE]);
        assert_eq!(exact.room(), 1);
        exact.push(b"\n");
        let m = exact.next_line().unwrap().unwrap();
        assert_eq!(exact.body(m).len(), MAX_MESSAGE);
        exact.release();
        assert_eq!(exact.room(), MAX_MESSAGE + 1);
    }

    #[test]
    fn many_tiny_lines_are_answered_one_at_a_time() {
        let mut framer = Framer::default();
        framer.push(&vec![b'\n'; MAX_MESSAGE * 2]);
        // Only one message's worth was taken; the rest waits in the kernel.
        assert_eq!(framer.room(), 0);
        let mut count = 0;
        while let Some(m) = framer.next_line().unwrap() {
            assert!(framer.body(m).is_empty());
            count += 1;
        }
        assert_eq!(count, MAX_MESSAGE + 1);
    }

    proptest! {
        /// However a stream of lines is cut into reads, the messages are the same.
        #[test]
        fn splitting_never_changes_line_messages(
            lines in proptest::collection::vec(proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..40), 0..20),
            cuts in proptest::collection::vec(any::<usize>(), 0..30),
        ) {
            let mut stream = Vec::new();
            for line in &lines {
                stream.extend_from_slice(line);
                stream.push(b'\n');
            }
            let expected = messages(&[&stream]);
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
            points.sort();
            let mut pieces: Vec<&[u8]> = Vec::new();
            let mut last = 0;
            for p in points.into_iter().chain([stream.len()]) {
                pieces.push(&stream[last..p]);
                last = p;
            }
            let got = messages(&pieces);
            prop_assert_eq!(&got, &expected);
            prop_assert_eq!(got.len(), lines.len());
        }

        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..20)) {
            let mut framer = Framer::default();
            for chunk in &chunks {
                framer.push(chunk);
                while let Ok(Some(m)) = framer.next_line() {
                    prop_assert!(framer.body(m).len() <= MAX_MESSAGE);
                }
            }
            let _ = framer.flush();
        }
    }
}
