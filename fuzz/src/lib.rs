//! What the fuzz targets share: turning the fuzzer's numbers into the
//! places where a peer's bytes are cut, as the network would cut them.

/// The cut points `cuts` name in `len` bytes, in order.
pub fn cut_points(len: usize, cuts: &[u16]) -> Vec<usize> {
    let mut points: Vec<usize> = cuts.iter().map(|c| usize::from(*c) % (len + 1)).collect();
    points.sort_unstable();
    points
}

/// `data` cut at those points: pieces that join back into `data`.
pub fn pieces<'a>(data: &'a [u8], cuts: &[u16]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut last = 0;
    for p in cut_points(data.len(), cuts).into_iter().chain([data.len()]) {
        pieces.push(&data[last..p]);
        last = p;
    }
    pieces
}
