//! Creating a container's active snapshot (containerd `Prepare`) on top of a 50-layer image
//! committed through the engine's path: the call containerd makes for every container start.
//! Target (issue 3): under 50 ms median.

use std::collections::BTreeMap;

use criterion::{Criterion, criterion_group, criterion_main};
use hoist_snapshotter::Store;

fn prepare_on_50_layers(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let store = Store::open(tmp.path()).expect("store opens");
    let mut parent: Option<String> = None;
    for i in 0..50 {
        let staged = store.stage().expect("stage");
        std::fs::write(staged.fs().join(format!("file-{i}")), b"layer").expect("write");
        let name = format!("sha256:{i:064x}");
        store
            .commit(staged, &name, parent.as_deref(), 5)
            .expect("commit");
        parent = Some(name);
    }
    let top = parent.expect("50 layers");
    let mut n = 0u64;
    c.bench_function("snapshots/prepare_on_50_layers", |b| {
        b.iter(|| {
            n += 1;
            let key = format!("container-{n}");
            let mounts = store
                .prepare(&key, Some(&top), BTreeMap::new())
                .expect("prepare");
            assert_eq!(mounts.len(), 1);
            store.release(&key).expect("remove the active snapshot");
        })
    });
}

criterion_group!(benches, prepare_on_50_layers);
criterion_main!(benches);
