//! Hello framing: any bytes, cut anywhere, never panic, never hold more
//! than one message, and lines give the same messages however they are cut.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portctl::fuzzing::{Framer, MAX_MESSAGE};
use portctl_fuzz::pieces;

/// Every message (body, ended by a newline) of `pieces`, fed as a server
/// feeds them: only as much as the framer has room for, answered before
/// more is read. `None` once a message is too long.
fn frame(pieces: &[&[u8]]) -> Option<Vec<(Vec<u8>, bool)>> {
    let mut framer = Framer::default();
    let mut out = Vec::new();
    for piece in pieces {
        let mut piece: &[u8] = piece;
        while !piece.is_empty() {
            let take = piece.len().min(framer.room());
            assert!(take > 0, "no room after every message was answered");
            framer.push(&piece[..take]);
            piece = &piece[take..];
            loop {
                match framer.next_line() {
                    Ok(Some(m)) => {
                        let body = framer.body(m);
                        assert!(body.len() <= MAX_MESSAGE);
                        out.push((body.to_vec(), m.line));
                    }
                    Ok(None) => break,
                    Err(_) => return None,
                }
            }
            framer.release();
        }
    }
    if let Some(m) = framer.flush() {
        assert!(framer.body(m).len() <= MAX_MESSAGE && !m.line);
        out.push((framer.body(m).to_vec(), m.line));
    }
    Some(out)
}

fuzz_target!(|input: (Vec<u8>, Vec<u16>)| {
    let (data, cuts) = input;
    let whole = frame(&[&data]);
    assert_eq!(frame(&pieces(&data, &cuts)), whole);
});
