//! Times what containerd asks for when it creates a container on a deep image: Prepare of an
//! active snapshot whose parent chain is LAYERS committed layers deep. Measured on the store
//! directly and through the gRPC service on a unix socket; prints the median and spread.
//!
//! ```text
//! cargo run --release -p hoist-snapshotter --example deep_prepare -- [LAYERS] [RUNS]
//! ```

#![allow(clippy::print_stdout)] // a tool run by hand: its output is the point

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hoist_snapshotter::Store;
use hoist_snapshotter::proto::containerd::services::snapshots::v1 as api;

fn summary(what: &str, mut times: Vec<Duration>) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    println!(
        "{what}: median {:.2} ms, p10 {:.2} ms, p90 {:.2} ms, max {:.2} ms ({} runs)",
        at(0.5),
        at(0.1),
        at(0.9),
        at(1.0),
        times.len()
    );
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let layers: usize = args.next().map_or(Ok(50), |a| a.parse())?;
    let runs: usize = args.next().map_or(Ok(200), |a| a.parse())?;
    let tmp = tempfile::tempdir()?;
    let store = Arc::new(Store::open(tmp.path().join("root"))?);

    // The image: LAYERS layers committed through the engine's path, one small file each.
    let mut parent: Option<String> = None;
    for i in 0..layers {
        let staged = store.stage()?;
        std::fs::write(staged.fs().join(format!("file-{i}")), b"layer")?;
        let name = format!("sha256:{i:064x}");
        store.commit(staged, &name, parent.as_deref(), 5)?;
        parent = Some(name);
    }
    let top = parent.context("at least one layer")?;

    let mut times = Vec::with_capacity(runs);
    for run in 0..runs {
        let started = Instant::now();
        let mounts = store.prepare(&format!("container-{run}"), Some(&top), BTreeMap::new())?;
        times.push(started.elapsed());
        if run == 0 {
            let lower = mounts[0]
                .options
                .iter()
                .find(|o| o.starts_with("lowerdir="));
            println!(
                "{layers} layers: lowerdir option is {} bytes",
                lower.map_or(0, String::len)
            );
        }
    }
    summary("store.prepare", times);

    let runtime = tokio::runtime::Runtime::new()?;
    let socket = tmp.path().join("snapshots.sock");
    let times = runtime.block_on(async {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn({
            let (store, socket) = (Arc::clone(&store), socket.clone());
            async move {
                let shutdown = async move {
                    let _ = stopped.await;
                };
                hoist_snapshotter::service::serve(store, &socket, shutdown).await
            }
        });
        let mut client = loop {
            let endpoint =
                tonic::transport::Endpoint::from_shared(format!("unix://{}", socket.display()))?;
            match endpoint.connect().await {
                Ok(channel) => break api::snapshots_client::SnapshotsClient::new(channel),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        let mut times = Vec::with_capacity(runs);
        for run in 0..runs {
            let request = api::PrepareSnapshotRequest {
                snapshotter: "hoist".into(),
                key: format!("k8s.io/{run}/grpc-container-{run}"),
                parent: top.clone(),
                labels: HashMap::new(),
            };
            let started = Instant::now();
            client.prepare(request).await?;
            times.push(started.elapsed());
        }
        let _ = stop.send(());
        server.await??;
        anyhow::Ok(times)
    })?;
    summary("gRPC Prepare over the unix socket", times);
    Ok(())
}
