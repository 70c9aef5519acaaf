//! What the connector tests share: the services they need beyond `services`, and a pull
//! through a resolver into a fresh store.

use std::sync::Arc;

use hoist::connectors::{self, Environment, PodContext, Resolver};
use hoist::images::Images;
use hoist::pull::{Options, Puller, Silent};
use hoist::registry::Client;
use hoist_harness::image::{Compression, Entry, Image, Layer, layout};
use hoist_harness::skopeo;
use hoist_snapshotter::Store;

fn required(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!("{name} is not set: run through `scripts/with-services.sh cargo test -p hoist-harness`")
        })
}

/// moto's endpoint, `http://127.0.0.1:PORT`.
pub fn moto() -> String {
    required("HOIST_TEST_MOTO_ENDPOINT")
}

/// The registry standing in for ECR's (user `AWS`, moto's token as password).
pub fn ecr_registry() -> String {
    required("HOIST_TEST_ECR_REGISTRY")
}

/// Pushes a one-file image to `host/repository:v1` with `creds` (`USER:PASSWORD`), returns the
/// reference.
pub fn push(host: &str, repository: &str, creds: Option<&str>, content: &str) -> String {
    let image = Image::new(vec![Layer::new(
        vec![Entry::file("hello", content)],
        Compression::Gzip,
    )]);
    let dir = tempfile::tempdir().unwrap();
    let written = layout::write(&image, dir.path(), "it", &layout::Options::default()).unwrap();
    let options = skopeo::Options {
        credentials: creds.map(|c| hoist_harness::Credentials::parse(c).unwrap()),
        ..skopeo::Options::default()
    };
    skopeo::push(
        &written,
        &format!("{host}/{repository}"),
        "v1",
        &[],
        &options,
    )
    .unwrap()
    .references[0]
        .clone()
}

/// A resolver for the connector keys in `toml`, with `env` as the process environment.
pub fn resolver(toml: &str, env: &[(&str, &str)]) -> Resolver {
    let config = hoist::config::Config::parse(toml).unwrap();
    Resolver::new(
        &config.connector_settings(),
        Environment::new(env.iter().map(|(k, v)| (k.to_string(), v.to_string()))),
        Default::default(),
        Default::default(),
    )
    .unwrap()
}

/// Pulls `image` for `pod` into a fresh store, reaching the `insecure` registry over plain HTTP.
pub async fn pull(
    resolver: &Resolver,
    image: &str,
    pod: &PodContext,
    insecure: &str,
) -> Result<hoist::pull::Pulled, connectors::pull::Error> {
    let root = tempfile::tempdir().unwrap();
    let client = Client::new(&hoist::registry::Options {
        insecure: vec![insecure.to_owned()],
        ..Default::default()
    })
    .unwrap();
    let puller = Puller::new(
        Arc::new(client),
        Arc::new(Store::open(root.path()).unwrap()),
        Images::open(root.path()).unwrap(),
        Options::default(),
    );
    connectors::pull::pull(
        resolver,
        &puller,
        &image.parse().unwrap(),
        pod,
        None,
        Arc::new(Silent),
    )
    .await
}
