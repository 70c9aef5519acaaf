//! `hoist-snapshotter --root DIR --socket PATH`: serves the snapshot store alone.
//! The containerd snapshots service lands with the snapshotter issue; today this opens (and
//! cleans) the store and reports what it holds.

use anyhow::Context;
use clap::Parser;

/// Hoist's snapshot store, served to containerd as a proxy snapshotter.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The store's root directory.
    #[arg(long, default_value = "/var/lib/hoist")]
    root: std::path::PathBuf,
    /// The unix socket to serve containerd's snapshots API on.
    #[arg(long, default_value = "/run/hoist/snapshots.sock")]
    socket: std::path::PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store = hoist_snapshotter::Store::open(&args.root)
        .with_context(|| format!("opening store {}", args.root.display()))?;
    let n = store.list()?.len();
    anyhow::bail!(
        "{n} snapshots in {}; serving {} is not implemented yet",
        args.root.display(),
        args.socket.display()
    )
}
