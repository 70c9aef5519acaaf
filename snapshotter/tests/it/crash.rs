//! SIGKILL of the `hoist-snapshotter` binary while a client prepares, writes and commits layer
//! after layer: after each kill the store must open consistent, keep every commit it
//! acknowledged, hold no half-committed snapshot, and serve again.

use std::fs;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hoist_snapshotter::Store;
use rustix::process::{Pid, Signal, kill_process};

use crate::common::{Daemon, commit, connect, prepare, stat, writable_dir};

/// A small xorshift generator: kill delays differ between rounds and runs.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_commits_leaves_a_consistent_store() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, socket, log) = (
        tmp.path().join("root"),
        tmp.path().join("s.sock"),
        tmp.path().join("log"),
    );
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    // Committed layers in chain order: acknowledged, or found committed after the kill.
    let mut chain: Vec<String> = Vec::new();
    let (mut acknowledged, mut landed_unacknowledged, mut lost_in_flight) = (0, 0, 0);
    for round in 0..8 {
        let mut daemon = Daemon::start(&root, &socket, &log);
        let mut c = connect(&socket).await;
        for name in &chain {
            stat(&mut c, name)
                .await
                .unwrap_or_else(|e| panic!("round {round}: {name} lost: {e}"));
        }
        let pid = Pid::from_raw(daemon.child.id() as i32).unwrap();
        let delay = Duration::from_millis(20 + next(&mut seed) % 200);
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            let _ = kill_process(pid, Signal::KILL);
        });
        let mut in_flight = None;
        for i in 0.. {
            let (key, name) = (format!("extract-{round}-{i}"), format!("layer-{round}-{i}"));
            let parent = chain.last().cloned().unwrap_or_default();
            let Ok(mounts) = prepare(&mut c, &key, &parent, Default::default()).await else {
                break;
            };
            // The daemon may be dead already; the directory is still there to write into.
            let _ = fs::write(writable_dir(&mounts).join("content"), &name);
            match commit(&mut c, &key, &name, Default::default()).await {
                Ok(()) => {
                    acknowledged += 1;
                    chain.push(name);
                }
                Err(_) => {
                    in_flight = Some(name);
                    break;
                }
            }
        }
        killer.join().unwrap();
        daemon.kill();

        let store = Store::open(&root).unwrap();
        let problems = store.check().unwrap();
        assert!(problems.is_empty(), "round {round}: {problems:?}");
        for (depth, name) in chain.iter().enumerate() {
            let layer = store
                .get(name)
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: {name} lost"));
            assert_eq!(fs::read_to_string(layer.fs.join("content")).unwrap(), *name);
            let parent = depth.checked_sub(1).map(|d| chain[d].clone());
            assert_eq!(layer.info.parent, parent, "round {round}: {name}");
        }
        if let Some(name) = in_flight {
            match store.get(&name).unwrap() {
                Some(layer) => {
                    // Committed before the kill, acknowledgement lost: whole, like any other.
                    assert_eq!(fs::read_to_string(layer.fs.join("content")).unwrap(), name);
                    landed_unacknowledged += 1;
                    chain.push(name);
                }
                None => lost_in_flight += 1,
            }
        }
        for dir in ["staging", "trash"] {
            let left = fs::read_dir(root.join(dir)).unwrap().count();
            assert_eq!(left, 0, "round {round}: {dir} not cleaned");
        }
    }
    // The store serves again after the last kill, and the chain can grow on it.
    let _daemon = Daemon::start(&root, &socket, &log);
    let mut c = connect(&socket).await;
    let parent = chain.last().cloned().unwrap_or_default();
    prepare(&mut c, "after", &parent, Default::default())
        .await
        .unwrap();
    commit(&mut c, "after", "layer-after", Default::default())
        .await
        .unwrap();
    eprintln!(
        "crash test: {acknowledged} commits acknowledged, {landed_unacknowledged} landed without \
         acknowledgement, {lost_in_flight} in flight and rolled back; chain of {}",
        chain.len() + 1
    );
    assert!(
        acknowledged > 0,
        "no commit finished before any kill; the test proved nothing"
    );
}
