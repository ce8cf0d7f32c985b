//! Request heads as `serve http` reads them: any bytes, cut anywhere, give
//! one of the four answers without panicking; a complete head stays the
//! same, and one too large stays too large, whatever follows it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portctl::fuzzing::{read_head, Head};
use portctl_fuzz::cut_points;

fuzz_target!(|input: (Vec<u8>, Vec<u16>)| {
    let (data, cuts) = input;
    let whole = read_head(&data);
    for p in cut_points(data.len(), &cuts) {
        match (read_head(&data[..p]), &whole) {
            (Head::Complete(request, json), Head::Complete(all, all_json)) => {
                assert_eq!((&request, json), (all, *all_json), "cut at {p}");
            }
            (Head::Complete(request, _), other) => {
                panic!("complete at {p} ({request:?}) but not with more bytes: {other:?}")
            }
            (Head::TooLarge, Head::TooLarge) => {}
            (Head::TooLarge, other) => {
                panic!("too large at {p} but not with more bytes: {other:?}")
            }
            _ => {}
        }
    }
});
