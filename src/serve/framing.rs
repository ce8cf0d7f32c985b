//! The hello protocol's message framing, as a pure state machine over
//! bytes, so it can be tested and fuzzed apart from any socket.
//!
//! A message is a line (`\n` or `\r\n`, stripped), or the bytes a client
//! sent without a newline before going quiet: the caller decides when the
//! client is quiet and calls [`Framer::flush`].

/// The most a message may hold; a client that sends more without a
/// newline is cut off, so each connection costs at most this much buffer.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// One message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub body: Vec<u8>,
    /// Ended by a newline: the reply ends with one too.
    pub line: bool,
}

impl Message {
    /// `exit` closes the connection without a reply.
    pub fn is_exit(&self) -> bool {
        self.body == b"exit"
    }

    /// `hello,M!`, with a newline when M came as a line.
    pub fn hello_reply(&self) -> Vec<u8> {
        let mut reply = Vec::with_capacity(self.body.len() + 8);
        reply.extend_from_slice(b"hello,");
        reply.extend_from_slice(&self.body);
        reply.push(b'!');
        if self.line {
            reply.push(b'\n');
        }
        reply
    }
}

/// The client sent more than [`MAX_MESSAGE`] bytes without a newline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

/// Splits a byte stream into messages.
#[derive(Debug, Default)]
pub struct Framer {
    partial: Vec<u8>,
}

impl Framer {
    /// Feeds bytes as they arrive; complete lines are appended to `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<Message>) -> Result<(), TooLong> {
        while let Some(at) = data.iter().position(|&b| b == b'\n') {
            if self.partial.len() + at > MAX_MESSAGE {
                return Err(TooLong);
            }
            let mut body = std::mem::take(&mut self.partial);
            body.extend_from_slice(&data[..at]);
            if body.last() == Some(&b'\r') {
                body.pop();
            }
            out.push(Message { body, line: true });
            data = &data[at + 1..];
        }
        if self.partial.len() + data.len() > MAX_MESSAGE {
            return Err(TooLong);
        }
        self.partial.extend_from_slice(data);
        Ok(())
    }

    /// Whether bytes without a newline are waiting.
    pub fn has_partial(&self) -> bool {
        !self.partial.is_empty()
    }

    /// The client went quiet: what it sent without a newline is a message.
    pub fn flush(&mut self) -> Option<Message> {
        if self.partial.is_empty() {
            return None;
        }
        // Give the buffer back: an idle connection should hold no memory.
        let body = std::mem::take(&mut self.partial);
        Some(Message { body, line: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn messages(chunks: &[&[u8]]) -> Vec<Message> {
        let mut framer = Framer::default();
        let mut out = Vec::new();
        for chunk in chunks {
            framer.push(chunk, &mut out).unwrap();
        }
        out.extend(framer.flush());
        out
    }

    #[test]
    fn lines_and_raw_messages() {
        let got = messages(&[b"Michael\nTracy\r\nSar", b"ah"]);
        let bodies: Vec<&[u8]> = got.iter().map(|m| m.body.as_slice()).collect();
        assert_eq!(bodies, [&b"Michael"[..], b"Tracy", b"Sarah"]);
        assert_eq!(
            got.iter().map(|m| m.line).collect::<Vec<_>>(),
            [true, true, false]
        );
        assert_eq!(got[0].hello_reply(), b"hello,Michael!\n");
        assert_eq!(got[2].hello_reply(), b"hello,Sarah!");
    }

    #[test]
    fn exit_and_bytes() {
        assert!(messages(&[b"exit"])[0].is_exit());
        assert!(messages(&[b"exit\r\n"])[0].is_exit());
        assert!(!messages(&[b"exits\n"])[0].is_exit());
        let m = &messages(&[b"\xff\x00\xfe\n"])[0];
        assert_eq!(m.hello_reply(), b"hello,\xff\x00\xfe!\n");
        assert_eq!(messages(&[b"\n"])[0].body, b"");
    }

    #[test]
    fn long_streams_are_cut_off_at_the_bound() {
        let mut framer = Framer::default();
        let mut out = Vec::new();
        let chunk = vec![b'x'; 4096];
        let mut fed = 0;
        let result = loop {
            match framer.push(&chunk, &mut out) {
                Ok(()) => fed += chunk.len(),
                Err(e) => break e,
            }
            assert!(fed <= MAX_MESSAGE);
        };
        assert_eq!(result, TooLong);
        let mut exact = Framer::default();
        assert!(exact.push(&vec![b'y'; MAX_MESSAGE], &mut out).is_ok());
        assert!(exact.push(b"\n", &mut out).is_ok());
    }

    proptest! {
        /// However a stream of lines is cut into reads, the replies are the same.
        #[test]
        fn splitting_never_changes_line_replies(
            lines in proptest::collection::vec(proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..40), 0..20),
            cuts in proptest::collection::vec(any::<usize>(), 0..30),
        ) {
            let mut stream = Vec::new();
            for line in &lines {
                stream.extend_from_slice(line);
                stream.push(b'\n');
            }
            let mut whole = Framer::default();
            let mut expected = Vec::new();
            whole.push(&stream, &mut expected).unwrap();
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
            points.sort();
            let mut split = Framer::default();
            let mut got = Vec::new();
            let mut last = 0;
            for p in points.into_iter().chain([stream.len()]) {
                split.push(&stream[last..p], &mut got).unwrap();
                last = p;
            }
            prop_assert_eq!(&got, &expected);
            prop_assert_eq!(got.len(), lines.len());
            prop_assert!(!split.has_partial());
        }

        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..20)) {
            let mut framer = Framer::default();
            let mut out = Vec::new();
            for chunk in &chunks {
                let _ = framer.push(chunk, &mut out);
            }
            let _ = framer.flush();
        }
    }
}
