//! Stream handling and options: the end-of-archive marker, limits, truncation, large files.

use std::fs;
use std::io::{Cursor, Read};

use tar::EntryType;

use super::{Layer, Sandbox};
use crate::error::Kind;
use crate::pull::unpack::{Error, Options};

#[test]
fn stops_at_the_end_of_archive_marker() {
    let mut tar = Layer::new().file("f", b"content").bytes();
    let tar_len = tar.len() as u64;
    tar.extend_from_slice(b"trailing bytes for the digest");
    for io_uring in [false, true] {
        let mut stream = Cursor::new(tar.clone());
        let sandbox = Sandbox::new();
        unpack_from(&sandbox, &mut stream, io_uring);
        assert!(stream.position() <= tar_len);
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        assert!(rest.ends_with(b"trailing bytes for the digest"));
    }
}

fn unpack_from(sandbox: &Sandbox, stream: &mut Cursor<Vec<u8>>, io_uring: bool) {
    let options = Options {
        io_uring,
        ..Options::default()
    };
    crate::pull::unpack::unpack(stream, &sandbox.dest(), &options).unwrap();
}

#[test]
fn enforces_options() {
    let tar = Layer::new()
        .file("a", b"12345")
        .file("b", b"67890")
        .node(EntryType::Char, "dev/zero", 1, 5)
        .bytes();
    type Expect = fn(&Error) -> bool;
    let cases: &[(Options, Expect, Kind)] = &[
        (
            Options {
                max_entries: Some(2),
                ..Options::default()
            },
            |e| matches!(e, Error::TooManyEntries { limit: 2 }),
            Kind::InvalidArgument,
        ),
        (
            Options {
                max_bytes: Some(9),
                ..Options::default()
            },
            |e| matches!(e, Error::TooLarge { path, limit: 9 } if path.to_str() == Some("b")),
            Kind::InvalidArgument,
        ),
        (
            Options {
                allow_devices: false,
                ..Options::default()
            },
            |e| matches!(e, Error::DeviceNotAllowed { path } if path.to_str() == Some("dev/zero")),
            Kind::PermissionDenied,
        ),
    ];
    for (options, expected, kind) in cases {
        let sandbox = Sandbox::new();
        let error = sandbox.unpack_with(&tar, options).unwrap_err();
        assert!(expected(&error), "{options:?}: {error}");
        assert_eq!(error.kind(), *kind, "{error}");
    }
    let sandbox = Sandbox::new();
    let limits = Options {
        max_entries: Some(3),
        max_bytes: Some(10),
        ..Options::default()
    };
    assert_eq!(sandbox.unpack_with(&tar, &limits).unwrap().entries, 3);
}

#[test]
fn refuses_a_destination_that_is_not_empty() {
    let sandbox = Sandbox::new();
    fs::write(sandbox.at("leftover"), b"").unwrap();
    let error = sandbox
        .unpack(&Layer::new().file("f", b"").bytes())
        .unwrap_err();
    assert!(
        matches!(error, Error::DestinationNotEmpty { .. }),
        "{error}"
    );
}

#[test]
fn fails_on_truncated_content_naming_the_entry() {
    let tar = Layer::new()
        .file("first", b"ok")
        .file("big", &[7; 4096])
        .bytes();
    // Cut inside the second file's content: headers of 512 bytes, first content padded to 512.
    let cut = &tar[..512 + 512 + 512 + 1000];
    let sandbox = Sandbox::new();
    let error = sandbox.unpack(cut).unwrap_err();
    assert!(
        matches!(&error, Error::Truncated { path, expected: 4096, written: 1000 } if path.to_str() == Some("big")),
        "{error}"
    );
    assert_eq!(error.kind(), Kind::InvalidArgument);
}

#[test]
fn copies_large_files_across_buffer_boundaries() {
    let content: Vec<u8> = (0..1_000_003u32).map(|i| (i % 251) as u8).collect();
    let tar = Layer::new().file("large", &content).bytes();
    let sandbox = Sandbox::new();
    let stats = sandbox.unpack(&tar).unwrap();
    assert_eq!(stats.bytes, content.len() as u64);
    assert_eq!(fs::read(sandbox.at("large")).unwrap(), content);
}
