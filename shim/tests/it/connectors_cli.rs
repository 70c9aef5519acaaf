//! `hoist prefetch` and `hoist connectors check` through the binary, against the in-process
//! registry with Basic auth (user `user`, password `secret`), with debug logs checked for the
//! secret. Checks of refused credentials are in the harness, against docker-registry.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{Comp, Faults, FaultyRegistry, image, tar_of};

/// A known secret value that must never appear in output: the registry's password.
const SECRET: &str = "secret";

fn hoist(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(args)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_no_secret(out: &Output) {
    let all = text(out);
    for needle in [SECRET, "dXNlcjpzZWNyZXQ", "tok-for-test-app"] {
        assert!(!all.contains(needle), "output shows {needle:?}:\n{all}");
    }
}

/// A config with one project connector `reg` for `host`, its password in a file.
fn config(dir: &Path, host: &str, password: &str) -> String {
    let password_file = dir.join("password");
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "root = {:?}\ninsecure_registries = [{host:?}]\n\n[[connector]]\nid = \"reg\"\n\
             scope = \"project:acme/web\"\ntype = \"DockerRegistry\"\nregistry = {host:?}\n\
             auth = {{ username = \"user\", password = {{ file = {:?} }} }}\n",
            dir.join("root"),
            password_file
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

async fn registry(faults: Faults) -> FaultyRegistry {
    let img = image(&[tar_of(&[("app", b"prefetched")])], Comp::Gzip, false);
    FaultyRegistry::start(img, faults).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_devcontainer_with_its_connector() {
    let reg = registry(Faults {
        basic_auth: true,
        ..Faults::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &reg.host(), SECRET);
    let devcontainer = dir.path().join("devcontainer.json");
    let write = |kind: &str| {
        std::fs::write(
            &devcontainer,
            format!(
                "{{\n  // workspace image\n  \"image\": \"{}\",\n  \"customizations\": {{ \"harnessGitspaces\": {{\n    \"connectors\": [{{ \"type\": \"{kind}\", \"identifier\": \"reg\" }},],\n  }} }},\n}}\n",
                reg.reference()
            ),
        )
        .unwrap();
    };
    let file = devcontainer.to_str().unwrap();
    write("DockerRegistry");
    let ok = hoist(&[
        "prefetch",
        "--config",
        &config,
        "--devcontainer",
        file,
        "--org",
        "acme",
        "--project",
        "web",
    ]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("prefetched"), "{}", text(&ok));
    assert!(
        text(&ok).contains("project:acme/web.reg"),
        "the decision is logged: {}",
        text(&ok)
    );
    assert_no_secret(&ok);

    // Another project may not use it.
    let denied = hoist(&[
        "prefetch",
        "--config",
        &config,
        "--devcontainer",
        file,
        "--project",
        "acme/api",
    ]);
    assert!(!denied.status.success());
    assert!(
        text(&denied).contains("not available to pods in project:acme/api"),
        "{}",
        text(&denied)
    );

    write("Artifactory");
    let wrong = hoist(&[
        "prefetch",
        "--config",
        &config,
        "--devcontainer",
        file,
        "--project",
        "acme/web",
    ]);
    assert!(!wrong.status.success());
    assert!(
        text(&wrong).contains("is DockerRegistry, the workspace file says Artifactory"),
        "{}",
        text(&wrong)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_gitpod_dockerfile_and_wrong_password() {
    let reg = registry(Faults {
        basic_auth: true,
        ..Faults::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!(
            "ARG BASE={}\nFROM $BASE AS base\nFROM base\n",
            reg.reference()
        ),
    )
    .unwrap();
    let gitpod = dir.path().join(".gitpod.yml");
    std::fs::write(&gitpod, "image:\n  file: Dockerfile\n").unwrap();
    // Routed to the connector; the pod (workspace) is in its project.
    let route = format!(
        "\n[[route]]\nregistry = {:?}\nconnector = \"reg\"\n",
        reg.host()
    );
    let good = config(dir.path(), &reg.host(), SECRET);
    let text_config = std::fs::read_to_string(&good).unwrap();
    std::fs::write(&good, format!("{text_config}{route}")).unwrap();
    let args = [
        "prefetch",
        "--config",
        &good,
        "--gitpod",
        gitpod.to_str().unwrap(),
        "--project",
        "acme/web",
    ];
    let ok = hoist(&args);
    assert!(ok.status.success(), "{}", text(&ok));
    assert_no_secret(&ok);

    let wrong_dir = tempfile::tempdir().unwrap();
    let bad = config(wrong_dir.path(), &reg.host(), "wrong-password-123");
    let text_config = std::fs::read_to_string(&bad).unwrap();
    std::fs::write(&bad, format!("{text_config}{route}")).unwrap();
    let args = [
        "prefetch",
        "--config",
        &bad,
        "--gitpod",
        gitpod.to_str().unwrap(),
        "--project",
        "acme/web",
    ];
    let refused = hoist(&args);
    assert!(!refused.status.success());
    let all = text(&refused);
    assert!(
        all.contains("project:acme/web.reg") && all.contains(&reg.host()),
        "{all}"
    );
    assert!(all.contains("refused"), "{all}");
    assert!(!all.contains("wrong-password-123"), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_check_prints_a_table() {
    let reg = registry(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let good = config(dir.path(), &reg.host(), SECRET);
    let ok = hoist(&["connectors", "check", "--config", &good]);
    assert!(ok.status.success(), "{}", text(&ok));
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(out.starts_with("CONNECTOR"), "{out}");
    assert!(
        out.contains("project:acme/web.reg  DockerRegistry  project:acme/web"),
        "{out}"
    );
    assert!(out.contains(" ok "), "{out}");
    assert_no_secret(&ok);
    let none = hoist(&["connectors", "check", "--config", &good, "nope"]);
    assert!(!none.status.success());
    assert!(text(&none).contains("no connector nope"), "{}", text(&none));
}

/// A refused check names what was requested, the registry's `/v2/`; it once printed
/// `refused access to : credentials were refused`, with an empty repository.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_check_with_refused_credentials_names_the_registry_api_root() {
    let reg = registry(Faults {
        basic_auth: true,
        ..Faults::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let bad = config(dir.path(), &reg.host(), "wrong-password-123");
    let refused = hoist(&["connectors", "check", "--config", &bad]);
    assert!(!refused.status.success());
    let all = text(&refused);
    let expected = format!(
        "FAILED: registry {} refused access to its API root /v2/: credentials were refused",
        reg.host()
    );
    assert!(all.contains(&expected), "{all}");
    assert!(!all.contains("refused access to :"), "{all}");
    assert!(!all.contains("wrong-password-123"), "{all}");
}
