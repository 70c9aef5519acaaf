//! How one blob's Range requests are scheduled: later chunks start while the probe's body is
//! still arriving, and a chunk cut short resumes from its first missing byte.

use std::time::Duration;

use hoist::registry::Credentials;

use crate::support::{
    Comp, Faults, FaultyRegistry, Node, STALL_OVER, image, noise, options, tar_of,
};

/// One uncompressed layer of a little over 300 KB: five 64 KiB chunks.
async fn pull_one_layer(faults: Faults) -> FaultyRegistry {
    let big = noise(300_000, 11);
    let image = image(&[tar_of(&[("big/blob", &big)])], Comp::None, false);
    let registry = FaultyRegistry::start(image, faults).await;
    let node = Node::new(&registry.host(), options(64 << 10));
    let pulled = node
        .pull(&registry.reference(), Credentials::Anonymous)
        .await;
    assert!(pulled.is_ok(), "{:?}", pulled.err());
    let layer = node.store.list().unwrap().pop().expect("the layer");
    let fs = node.store.get(&layer.name).unwrap().unwrap().fs;
    assert_eq!(std::fs::read(fs.join("big/blob")).unwrap(), big);
    registry
}

#[tokio::test]
async fn later_chunks_start_while_the_probe_body_arrives() {
    let registry = pull_one_layer(Faults {
        stall: Some((Duration::from_secs(2), 1)),
        ..Faults::default()
    })
    .await;
    let events = registry.events();
    let stall_over = events.iter().position(|e| e == STALL_OVER);
    let before = &events[..stall_over.expect("the probe's body stalled")];
    // The probe and the three chunks its window of four allows were all asked for while the
    // probe's body was stalled; the fifth waits for the probe to be read.
    assert_eq!(before.len(), 4, "{events:?}");
    assert_eq!(before[0], "bytes=0-65535", "{events:?}");
    assert_eq!(events.len(), 6, "{events:?}");
}

#[tokio::test]
async fn a_chunk_cut_short_resumes_from_its_first_missing_byte() {
    let registry = pull_one_layer(Faults {
        reset_after: Some((1000, 1)),
        ..Faults::default()
    })
    .await;
    let events = registry.events();
    assert_eq!(events[0], "bytes=0-65535", "{events:?}");
    assert!(events.iter().any(|e| e == "bytes=1000-65535"), "{events:?}");
    let again = events.iter().filter(|e| *e == "bytes=0-65535").count();
    assert_eq!(
        again, 1,
        "the delivered bytes were not asked for again: {events:?}"
    );
}
