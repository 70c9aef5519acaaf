//! `hoist prefetch` and `hoist connectors check`: flags onto the library (part of the `hoist`
//! binary, not the library).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use hoist::config::Config;
use hoist::connectors::{self, Environment, PodContext, Resolver};
use hoist::images::Images;
use hoist::pull::Puller;
use hoist::registry::Client;
use hoist::workspace::{self, Target};
use hoist::{progress, workspace::devcontainer, workspace::gitpod};
use hoist_snapshotter::Store;

/// `hoist prefetch`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("file").required(true).args(["devcontainer", "gitpod"])))]
pub struct PrefetchArgs {
    #[command(flatten)]
    pub common: super::Common,
    /// A devcontainer.json: its `image`, with the Gitspaces connector it names.
    #[arg(long)]
    pub devcontainer: Option<PathBuf>,
    /// A .gitpod.yml: its `image`, or the `FROM` images of its `image.file` Dockerfile.
    #[arg(long)]
    pub gitpod: Option<PathBuf>,
    /// The workspace's organisation, for `org.X` and `X` connector references.
    #[arg(long)]
    pub org: Option<String>,
    /// The workspace's project (`NAME` or `ORG/NAME`), for `X` connector references.
    #[arg(long)]
    pub project: Option<String>,
    /// Registry (HOST or HOST:PORT) to reach over plain HTTP; repeatable
    /// [config: insecure_registries].
    #[arg(long = "insecure-registry")]
    pub insecure_registry: Vec<String>,
}

/// `hoist connectors …`.
#[derive(Debug, clap::Subcommand)]
pub enum ConnectorsCommand {
    /// Obtain each connector's credentials and send an authenticated GET /v2/; print a table.
    Check(CheckArgs),
}

/// `hoist connectors check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub common: super::Common,
    /// Only this connector (`ID` or `SCOPE.ID`, e.g. `account.hub`).
    pub id: Option<String>,
}

fn resolver(config: &Config) -> anyhow::Result<Resolver> {
    Ok(Resolver::new(
        &config.connector_settings(),
        Environment::new(std::env::vars()),
        Default::default(),
        Default::default(),
    )?)
}

/// Runs `hoist prefetch`.
#[tokio::main]
pub async fn prefetch(args: PrefetchArgs) -> anyhow::Result<()> {
    let mut config = super::load(&args.common)?;
    config.insecure_registries.extend(args.insecure_registry);
    let targets: Vec<Target> = match (&args.devcontainer, &args.gitpod) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            vec![devcontainer::parse(&text).with_context(|| path.display().to_string())?]
        }
        (None, Some(path)) => gitpod::load(path)?,
        (None, None) => anyhow::bail!("name --devcontainer or --gitpod"),
    };
    let labels = [
        args.org
            .map(|o| (connectors::scope::LABEL_ORG.to_owned(), o)),
        args.project
            .map(|p| (connectors::scope::LABEL_PROJECT.to_owned(), p)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let pod = PodContext::from_metadata(&Default::default(), &labels)?;
    let resolver = resolver(&config)?;
    let client = Arc::new(Client::new(&config.registry_options())?);
    let store = Arc::new(Store::open(&config.root).with_context(|| "opening the snapshot store")?);
    let puller = Puller::new(
        client,
        store,
        Images::open(&config.root)?,
        config.pull_options()?,
    );
    let bars = Arc::new(progress::Bars::new(false));
    let pulled = workspace::prefetch(&resolver, &puller, &targets, &pod, bars.clone()).await;
    bars.finish();
    for p in pulled? {
        println!("prefetched {} (id {}) in {:.3} s", p.image, p.id, p.seconds);
    }
    Ok(())
}

/// Runs `hoist connectors check`; fails when any connector fails.
#[tokio::main]
pub async fn check(args: CheckArgs) -> anyhow::Result<()> {
    let config = super::load(&args.common)?;
    let resolver = resolver(&config)?;
    let client = Arc::new(Client::new(&config.registry_options())?);
    let rows = connectors::check::check(&resolver, &client, args.id.as_deref()).await;
    if rows.is_empty() {
        anyhow::bail!(
            "no connector {}in the config",
            args.id.map(|i| format!("{i} ")).unwrap_or_default()
        );
    }
    print!("{}", connectors::check::table(&rows));
    let failed = rows.iter().filter(|r| r.result.is_err()).count();
    if failed > 0 {
        anyhow::bail!("{failed} of {} connectors failed", rows.len());
    }
    Ok(())
}
