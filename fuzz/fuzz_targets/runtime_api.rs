//! A container runtime's API reply, as a hostile or broken daemon could
//! send it, cut anywhere: the status line, headers, a chunked or sized
//! body, JSON with any text. It never panics, never keeps more than its
//! limit, and the cuts never change the answer; every id it lists fits a
//! request path, and ids are cut on character boundaries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portctl::fuzzing::{listed, read_reply, short_id};
use portctl_fuzz::pieces;
use std::io::Read;

/// A daemon's bytes as the socket hands them over, a piece at a time.
struct Pieces<'a>(Vec<&'a [u8]>);

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some(piece) = self.0.first_mut() {
            if piece.is_empty() {
                self.0.remove(0);
                continue;
            }
            let n = piece.len().min(buf.len());
            buf[..n].copy_from_slice(&piece[..n]);
            *piece = &piece[n..];
            return Ok(n);
        }
        Ok(0)
    }
}

fuzz_target!(|input: (Vec<u8>, Vec<u16>, u16)| {
    let (data, cuts, limit) = input;
    let limit = usize::from(limit);
    let cut = read_reply(&mut Pieces(pieces(&data, &cuts)), limit);
    let whole = read_reply(&mut Pieces(vec![&data]), limit);
    match (&cut, &whole) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "the cuts changed the reply"),
        (Err(_), Err(_)) => {}
        _ => panic!("the cuts changed whether it read: {cut:?} / {whole:?}"),
    }
    let Ok((_, body)) = cut else { return };
    assert!(body.len() <= limit, "{} bytes kept past {limit}", body.len());
    for (id, name) in listed(&body) {
        assert!(
            (12..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "an id that is not one: {id:?}"
        );
        assert!(short_id(&id).len() <= 12);
        if let Some(name) = name {
            let _ = short_id(&name);
        }
    }
});
