use super::*;

/// The fields `block` decodes to with a decoder that has seen `earlier` first: what the server
/// reads from the rewritten stream.
fn server_reads(blocks: &[Vec<u8>]) -> Vec<Vec<(String, String)>> {
    let mut decoder = loona_hpack::Decoder::new();
    blocks
        .iter()
        .map(|block| {
            decoder
                .decode(block)
                .unwrap()
                .into_iter()
                .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
                .collect()
        })
        .collect()
}

/// Rewrites each block in turn through one [`Block`], keeping the ones that need no change.
fn rewrite_all(blocks: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut state = Block::new();
    blocks
        .iter()
        .map(|b| state.rewrite(b).unwrap().unwrap_or_else(|| b.clone()))
        .collect()
}

fn raw(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_string(&mut out, value);
    out
}

/// `:method POST`, `:scheme http`, then the given `:authority` representation, then `:path`.
fn request(authority: &[u8]) -> Vec<u8> {
    let mut block = vec![0x83, 0x86];
    block.extend_from_slice(authority);
    block.push(0x04); // :path, literal without indexing, static name 4
    block.extend(raw(b"/runtime.v1.ImageService/ListImages"));
    block
}

fn authority_of(fields: &[(String, String)]) -> &str {
    &fields.iter().find(|(n, _)| n == ":authority").unwrap().1
}

#[test]
fn literal_socket_path_is_rewritten_and_its_table_entry_with_it() {
    // grpc-go before 1.64: the path, indexed into the dynamic table, then referenced by index.
    let mut first = vec![0x41];
    first.extend(raw(b"/run/hoist/cri.sock"));
    let blocks = vec![request(&first), request(&[0xbe])];
    let read = server_reads(&rewrite_all(&blocks));
    assert_eq!(authority_of(&read[0]), "-run-hoist-cri.sock");
    assert_eq!(authority_of(&read[1]), "-run-hoist-cri.sock");
    assert_eq!(read[0].len(), 4);
    assert_eq!(read[0][3].1, "/runtime.v1.ImageService/ListImages");
}

#[test]
fn every_literal_representation_is_rewritten() {
    for prefix in [
        vec![0x41],                                  // incremental indexing, static name
        vec![0x01],                                  // without indexing, static name
        vec![0x11],                                  // never indexed, static name
        [&[0x40][..], &raw(b":authority")].concat(), // incremental indexing, literal name
        [&[0x00][..], &raw(b":authority")].concat(), // without indexing, literal name
    ] {
        let block = request(&[prefix.clone(), raw(b"unix:/tmp/x y.sock")].concat());
        let read = server_reads(&rewrite_all(&[block]));
        assert_eq!(
            authority_of(&read[0]),
            "unix--tmp-x-y.sock",
            "prefix {prefix:x?}"
        );
    }
}

#[test]
fn huffman_coded_value_is_decoded_then_written_plain() {
    // RFC 7541 C.6.1: "https://www.example.com", Huffman-coded (17 bytes).
    let huffman = [
        0x91, 0x9d, 0x29, 0xad, 0x17, 0x18, 0x63, 0xc7, 0x8f, 0x0b, 0x97, 0xc8, 0xe9, 0xae, 0x82,
        0xae, 0x43, 0xd3,
    ];
    let block = request(&[&[0x41][..], &huffman].concat());
    let rewritten = rewrite_all(&[block.clone(), request(&[0xbe])]);
    assert_ne!(rewritten[0], block);
    let read = server_reads(&rewritten);
    assert_eq!(authority_of(&read[0]), "https---www.example.com");
    assert_eq!(authority_of(&read[1]), "https---www.example.com");
}

#[test]
fn a_valid_authority_is_left_alone() {
    for value in [
        &b"localhost"[..],
        b"127.0.0.1:5000",
        b"[::1]:80",
        b"cri.sock",
    ] {
        let block = request(&[&[0x41][..], &raw(value)].concat());
        assert_eq!(Block::new().rewrite(&block), Ok(None));
    }
}

#[test]
fn a_block_the_decoder_refuses_is_an_error() {
    let mut state = Block::new();
    // An index past both tables.
    assert!(matches!(
        state.rewrite(&[0xff, 0x7f]),
        Err(Error::Decode(_))
    ));
    // A size update above the 4096 bytes the server allows.
    assert!(matches!(
        Block::new().rewrite(&[0x3f, 0xe1, 0x7f, 0x82]),
        Err(Error::Decode(_))
    ));
}

#[test]
fn sanitized_values_are_valid_authorities_of_the_same_length() {
    for value in [
        &b"/run/hoist/cri.sock"[..],
        b"%2Frun%2Fhoist",
        b"a@b:c",
        b"[x]",
    ] {
        let clean = sanitize(value);
        assert_eq!(clean.len(), value.len());
        assert!(is_valid(&clean), "{}", String::from_utf8_lossy(&clean));
    }
}

proptest::proptest! {
    /// Whatever the block, a rewrite keeps every field but `:authority`, and makes that one
    /// valid; arbitrary bytes never panic.
    #[test]
    fn rewrite_keeps_other_fields(
        values in proptest::collection::vec("[ -~]{0,40}", 1..6),
        junk in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
    ) {
        let mut block = vec![0x82];
        for (i, v) in values.iter().enumerate() {
            let prefix = [0x41u8, 0x01, 0x11][i % 3];
            block.push(prefix);
            block.extend(raw(v.as_bytes()));
            block.push(0x40);
            block.extend(raw(b"x-other"));
            block.extend(raw(v.as_bytes()));
        }
        let original = server_reads(std::slice::from_ref(&block));
        let read = server_reads(&rewrite_all(std::slice::from_ref(&block)));
        proptest::prop_assert_eq!(original[0].len(), read[0].len());
        for ((n0, v0), (n1, v1)) in original[0].iter().zip(&read[0]) {
            proptest::prop_assert_eq!(n0, n1);
            if n0 == ":authority" && !v0.is_empty() {
                proptest::prop_assert!(is_valid(v1.as_bytes()));
                proptest::prop_assert_eq!(v0.len(), v1.len());
                if is_valid(v0.as_bytes()) {
                    proptest::prop_assert_eq!(v0, v1);
                }
            } else {
                proptest::prop_assert_eq!(v0, v1);
            }
        }
        let _ = Block::new().rewrite(&junk);
    }
}
