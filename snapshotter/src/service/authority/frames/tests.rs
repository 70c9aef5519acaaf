use super::*;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame_header(&mut out, payload.len(), kind, flags, stream);
    out.extend_from_slice(payload);
    out
}

fn string(value: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::try_from(value.len()).unwrap()];
    out.extend_from_slice(value);
    out
}

/// A request's header block with `authority` as a literal indexed into the dynamic table.
fn block(authority: &[u8]) -> Vec<u8> {
    [
        &[0x83, 0x86, 0x41][..],
        &string(authority),
        &[0x04],
        &string(b"/svc/Call"),
    ]
    .concat()
}

fn settings() -> Vec<u8> {
    frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100])
}

fn data(stream: u32) -> Vec<u8> {
    frame(0x0, END_STREAM_FLAG, stream, &[0, 0, 0, 0, 0])
}

const END_STREAM_FLAG: u8 = 0x1;

/// The filter's output for `input` fed in pieces of `piece` bytes, ending with `finish`.
fn filtered(input: &[u8], piece: usize) -> Vec<u8> {
    let mut filter = Filter::new();
    let mut out = Vec::new();
    for chunk in input.chunks(piece.max(1)) {
        filter.push(chunk, &mut out);
    }
    filter.finish(&mut out);
    out
}

fn connection(frames: &[Vec<u8>]) -> Vec<u8> {
    [PREFACE.to_vec(), frames.concat()].concat()
}

#[test]
fn socket_path_authority_is_rewritten_in_place() {
    let input = connection(&[
        settings(),
        frame(HEADERS, END_HEADERS, 1, &block(b"/run/hoist/cri.sock")),
        data(1),
    ]);
    let want = connection(&[
        settings(),
        frame(HEADERS, END_HEADERS, 1, &block(b"-run-hoist-cri.sock")),
        data(1),
    ]);
    for piece in [1, 2, 7, 9, 24, 25, 1000] {
        assert_eq!(filtered(&input, piece), want, "pieces of {piece}");
    }
}

#[test]
fn a_valid_connection_passes_byte_for_byte() {
    let input = connection(&[
        settings(),
        frame(
            HEADERS,
            END_HEADERS | PADDED,
            1,
            &[&[2][..], &block(b"localhost"), &[0, 0]].concat(),
        ),
        frame(HEADERS, 0, 3, &block(b"localhost")[..4]),
        frame(CONTINUATION, END_HEADERS, 3, &block(b"localhost")[4..]),
        data(3),
    ]);
    for piece in [1, 5, 4096] {
        assert_eq!(filtered(&input, piece), input);
    }
}

#[test]
fn continuations_padding_and_priority_are_joined_into_one_frame() {
    let whole = block(b"/tmp/s.sock");
    let headers = [&[3][..], &[0x80, 0, 0, 1, 15], &whole[..5], &[0, 0, 0]].concat();
    let input = connection(&[
        frame(HEADERS, PADDED | PRIORITY | END_STREAM_FLAG, 5, &headers),
        frame(CONTINUATION, 0, 5, &whole[5..8]),
        frame(CONTINUATION, END_HEADERS, 5, &whole[8..]),
    ]);
    let payload = [&[0x80, 0, 0, 1, 15][..], &block(b"-tmp-s.sock")].concat();
    let want = connection(&[frame(
        HEADERS,
        PRIORITY | END_STREAM_FLAG | END_HEADERS,
        5,
        &payload,
    )]);
    assert_eq!(filtered(&input, 3), want);
}

#[test]
fn a_block_larger_than_a_frame_is_split_into_continuations() {
    let mut big = block(b"/run/x.sock");
    for _ in 0..400 {
        big.push(0x40);
        big.extend(string(b"x-filler"));
        big.extend(string(&[b'v'; 60]));
    }
    let input = connection(&[
        frame(HEADERS, 0, 1, &big[..10_000]),
        frame(CONTINUATION, 0, 1, &big[10_000..20_000]),
        frame(CONTINUATION, END_HEADERS, 1, &big[20_000..]),
    ]);
    let out = filtered(&input, 4096);
    let mut frames = Vec::new();
    let mut rest = &out[PREFACE.len()..];
    while !rest.is_empty() {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        frames.push((
            rest[3],
            rest[4],
            rest[HEADER_LEN..HEADER_LEN + len].to_vec(),
        ));
        rest = &rest[HEADER_LEN + len..];
    }
    assert_eq!(frames.len(), 2);
    assert_eq!((frames[0].0, frames[0].1), (HEADERS, 0));
    assert_eq!(frames[0].2.len(), MAX_FRAME);
    assert_eq!((frames[1].0, frames[1].1), (CONTINUATION, END_HEADERS));
    let joined = [frames[0].2.clone(), frames[1].2.clone()].concat();
    let read = loona_hpack::Decoder::new().decode(&joined).unwrap();
    assert_eq!(read[2], (b":authority".to_vec(), b"-run-x.sock".to_vec()));
    assert_eq!(read.len(), 404);
}

#[test]
fn malformed_streams_pass_through_untouched() {
    let bad = block(b"/run/hoist/cri.sock");
    let cases = [
        // Not HTTP/2's preface.
        [
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            frame(HEADERS, END_HEADERS, 1, &bad),
        ]
        .concat(),
        // A frame between HEADERS and its CONTINUATION.
        connection(&[
            frame(HEADERS, 0, 1, &bad[..3]),
            data(1),
            frame(CONTINUATION, END_HEADERS, 1, &bad[3..]),
        ]),
        // A CONTINUATION of another stream.
        connection(&[
            frame(HEADERS, 0, 1, &bad[..3]),
            frame(CONTINUATION, END_HEADERS, 3, &bad[3..]),
        ]),
        // Padding longer than the frame.
        connection(&[frame(HEADERS, END_HEADERS | PADDED, 1, &[200, 0x82])]),
        // A block HPACK refuses, then a block that would otherwise be rewritten.
        connection(&[
            frame(HEADERS, END_HEADERS, 1, &[0xff, 0x7f]),
            frame(HEADERS, END_HEADERS, 3, &bad),
        ]),
        // Cut off inside a frame.
        connection(&[frame(HEADERS, END_HEADERS, 1, &bad)[..20].to_vec()]),
    ];
    for (i, input) in cases.iter().enumerate() {
        assert_eq!(&filtered(input, 7), input, "case {i}");
    }
}

proptest::proptest! {
    /// However the bytes arrive, the server reads the same stream; arbitrary bytes never panic.
    #[test]
    fn output_does_not_depend_on_how_bytes_arrive(
        pieces in proptest::collection::vec(1usize..64, 1..20),
        junk in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
    ) {
        let input = connection(&[
            settings(),
            frame(HEADERS, 0, 1, &block(b"/run/hoist/cri.sock")[..6]),
            frame(CONTINUATION, END_HEADERS, 1, &block(b"/run/hoist/cri.sock")[6..]),
            data(1),
            frame(HEADERS, END_HEADERS, 3, &[0x83, 0x86, 0xbe, 0x04, 1, b'/']),
            junk.clone(),
        ]);
        let whole = filtered(&input, input.len());
        let mut filter = Filter::new();
        let mut out = Vec::new();
        let mut rest = &input[..];
        for n in pieces.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at((*n).min(rest.len()));
            filter.push(chunk, &mut out);
            rest = tail;
        }
        filter.finish(&mut out);
        proptest::prop_assert_eq!(out, whole);
        let _ = filtered(&junk, 5);
    }
}
