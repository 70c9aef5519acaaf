//! The HTTP/2 `:authority` filter every connection to `hoist serve`'s sockets passes through
//! (`hoist_snapshotter::service::authority`): a client's bytes, after the connection preface.

use hoist_snapshotter::service::authority::Filter;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn filtered(input: &[u8], piece: usize) -> Vec<u8> {
    let mut filter = Filter::new();
    let mut out = Vec::new();
    for chunk in input.chunks(piece.max(1)) {
        filter.push(chunk, &mut out);
    }
    filter.finish(&mut out);
    out
}

/// The first byte sets how the stream is cut into reads; the rest follows the preface. The
/// server reads the same bytes however they arrive, never panics, and filtering what was
/// filtered changes nothing (a rewritten `:authority` is valid, and everything else passed
/// through as it was).
pub fn http2_authority(data: &[u8]) {
    let Some((&piece, rest)) = data.split_first() else {
        return;
    };
    let input = [PREFACE, rest].concat();
    let whole = filtered(&input, input.len());
    assert_eq!(filtered(&input, usize::from(piece % 32) + 1), whole);
    assert_eq!(
        filtered(&whole, whole.len()),
        whole,
        "filtering is idempotent"
    );
}
