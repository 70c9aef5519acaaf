//! Property tests across stages: any chunk size, concurrency and arrival order reassembles the
//! original blob; chain IDs follow the OCI image spec's definition.

use hoist::Digest;
use hoist::registry::Credentials;
use proptest::prelude::*;

use crate::support::{Comp, Faults, FaultyRegistry, Node, image, noise, options, tar_of};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Range chunks answered after random delays arrive out of order; the layer must still be
    /// reassembled byte for byte (its digest and diff ID are checked by the pull, and the
    /// file is compared here).
    #[test]
    fn any_chunk_size_and_arrival_order_reassembles_the_blob(
        chunk in 512u64..40_000,
        in_flight in 1usize..8,
        len in 1usize..120_000,
        seed in any::<u64>(),
    ) {
        let data = noise(len, seed);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let got = runtime.block_on(async {
            let img = image(&[tar_of(&[("blob", &data)])], Comp::None, false);
            let faults = Faults { jitter: Some(seed), ..Faults::default() };
            let registry = FaultyRegistry::start(img, faults).await;
            let mut opts = options(chunk);
            opts.fetch.chunks_in_flight = in_flight;
            let node = Node::new(&registry.host(), opts);
            node.pull(&registry.reference(), Credentials::Anonymous).await.unwrap();
            let name = node.store.list().unwrap()[0].name.clone();
            let fs = node.store.get(&name).unwrap().unwrap().fs;
            std::fs::read(fs.join("blob")).unwrap()
        });
        prop_assert!(got == data, "{} bytes in {chunk}-byte chunks, {in_flight} in flight", len);
    }

    /// `ChainID(L0) = DiffID(L0)`, `ChainID(Ln) = SHA256(ChainID(Ln-1) + " " + DiffID(Ln))`
    /// (OCI image spec, config.md "Layer ChainID"), computed here with `sha2` directly.
    #[test]
    fn chain_ids_follow_the_oci_definition(layers in prop::collection::vec(any::<[u8; 8]>(), 0..12)) {
        use sha2::Digest as _;
        let diff_ids: Vec<Digest> = layers.iter().map(|l| Digest::of(l)).collect();
        let chains = hoist::pull::plan::chain_ids(&diff_ids);
        prop_assert_eq!(chains.len(), diff_ids.len());
        let mut parent: Option<String> = None;
        for (diff_id, chain) in diff_ids.iter().zip(&chains) {
            let expected = match parent {
                None => diff_id.to_string(),
                Some(p) => format!(
                    "sha256:{}",
                    hex::encode(sha2::Sha256::digest(format!("{p} {diff_id}").as_bytes()))
                ),
            };
            prop_assert_eq!(chain.to_string(), expected.clone());
            parent = Some(expected);
        }
    }
}
