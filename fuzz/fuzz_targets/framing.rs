//! Hello framing: any bytes, cut anywhere, never panic, never buffer more
//! than the bound, and lines give the same messages however they are cut.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portctl::serve::framing::{Framer, MAX_MESSAGE};

fuzz_target!(|input: (Vec<u8>, Vec<u16>)| {
    let (data, cuts) = input;
    let mut whole = Framer::default();
    let mut expected = Vec::new();
    let whole_ok = whole.push(&data, &mut expected).is_ok();

    let mut points: Vec<usize> = cuts.iter().map(|c| usize::from(*c) % (data.len() + 1)).collect();
    points.sort_unstable();
    let mut split = Framer::default();
    let mut got = Vec::new();
    let mut last = 0;
    let mut split_ok = true;
    for p in points.into_iter().chain([data.len()]) {
        if split.push(&data[last..p], &mut got).is_err() {
            split_ok = false;
            break;
        }
        last = p;
    }
    assert_eq!(whole_ok, split_ok);
    if whole_ok {
        assert_eq!(got, expected);
    }
    for m in &got {
        assert!(m.body.len() <= MAX_MESSAGE);
        let _ = m.hello_reply();
    }
    if let Some(rest) = split.flush() {
        assert!(rest.body.len() <= MAX_MESSAGE && !rest.line);
    }
});
