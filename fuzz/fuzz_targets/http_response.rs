//! HTTP responses as `talk --http` reads them: any bytes, cut anywhere,
//! never panic; a decoded body is never longer than the bytes it came
//! from, and decodes the same however it is cut.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portctl::fuzzing::{read_response_head, BodyDecoder, BodyError, Framing, ResponseHead};
use portctl_fuzz::pieces;

/// Interim (1xx) heads talk skips before the final one, at most.
const MAX_INTERIM: usize = 8;

/// Reads the final head as talk does, a piece at a time; the head and
/// the bytes after it in what was read, and how many pieces that took.
fn read_head(pieces: &[&[u8]]) -> Option<(ResponseHead, Vec<u8>, usize)> {
    let mut buffer = Vec::new();
    let mut interim = 0;
    for (used, piece) in pieces.iter().enumerate() {
        buffer.extend_from_slice(piece);
        loop {
            let head = read_response_head(&buffer).ok()??;
            assert!(head.len > 0 && head.len <= buffer.len());
            let rest = buffer.split_off(head.len);
            if (100..200).contains(&head.status) && head.status != 101 && interim < MAX_INTERIM {
                interim += 1;
                buffer = rest;
                continue;
            }
            return Some((head, rest, used + 1));
        }
    }
    None
}

/// Decodes `pieces` as they come: the body, whether it ended, and the
/// error that stopped it.
fn decode(framing: Framing, pieces: &[&[u8]]) -> (Vec<u8>, bool, Option<BodyError>) {
    let mut decoder = BodyDecoder::new(framing);
    let mut body = Vec::new();
    for piece in pieces {
        if let Err(e) = decoder.feed(piece, &mut |bytes| body.extend_from_slice(bytes)) {
            return (body, decoder.is_done(), Some(e));
        }
    }
    // The server closes here: an answer either way, never a panic.
    let _ = decoder.finish();
    (body, decoder.is_done(), None)
}

fuzz_target!(|input: (Vec<u8>, Vec<u16>)| {
    let (data, cuts) = input;
    let pieces = pieces(&data, &cuts);
    let Some((head, rest, used)) = read_head(&pieces) else {
        return;
    };
    let Ok(framing) = head.framing() else {
        return;
    };
    let mut after: Vec<&[u8]> = vec![&rest];
    after.extend_from_slice(&pieces[used..]);
    let sent: usize = after.iter().map(|p| p.len()).sum();
    let cut = decode(framing, &after);
    assert!(
        cut.0.len() <= sent,
        "{} body bytes from {sent}",
        cut.0.len()
    );
    let whole = decode(framing, &[&after.concat()]);
    assert_eq!(cut, whole, "the cuts changed the body");
});
