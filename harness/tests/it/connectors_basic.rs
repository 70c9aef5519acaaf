//! `DockerRegistry` and `Artifactory` (repository-path form) connectors against the real
//! docker-registry with htpasswd, and a wrong password: `Unauthenticated`, naming the
//! connector and the registry, without the secret.

use hoist::connectors::{PodContext, Source};
use hoist::error::Kind;

use crate::connector_services as cs;
use crate::services;

fn connector(id: &str, kind: &str, registry: &str, user: &str) -> String {
    format!(
        "[[connector]]\nid = \"{id}\"\nscope = \"project:acme/web\"\ntype = \"{kind}\"\n\
         registry = \"{registry}\"\nauth = {{ username = \"{user}\", {} = {{ env = \"SECRET\" }} }}\n",
        if kind == "Artifactory" {
            "api_key"
        } else {
            "password"
        }
    )
}

fn web_pod(connector: &str) -> PodContext {
    PodContext {
        org: Some("acme".into()),
        project: Some("web".into()),
        connector: Some(connector.into()),
    }
}

#[tokio::test]
async fn docker_registry_and_artifactory_path_form_with_basic_auth_needs_registry() {
    let (host, creds) = services::auth_registry();
    let (user, password) = (creds.username.as_str(), creds.password.as_str());
    let joined = format!("{user}:{password}");
    let plain = cs::push(&host, "team/app", Some(&joined), "docker registry");
    let art = cs::push(&host, "docker-local/team/app", Some(&joined), "artifactory");
    let toml = format!(
        "{}{}",
        connector("nexus", "DockerRegistry", &host, user),
        connector(
            "jfrog",
            "Artifactory",
            &format!("https://{host}/docker-local"),
            user
        )
    );
    let r = cs::resolver(&toml, &[("SECRET", password)]);
    for (image, name) in [(&plain, "nexus"), (&art, "jfrog")] {
        let pod = web_pod(name);
        let resolved = r
            .resolve(&image.parse().unwrap(), &pod, None)
            .await
            .unwrap();
        assert_eq!(resolved.source, Source::Annotation, "{image}");
        cs::pull(&r, image, &pod, &host).await.unwrap();
    }
    // Without the connector the registry refuses.
    let e = cs::pull(&r, &plain, &PodContext::default(), &host)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Unauthenticated, "{e}");
}

#[tokio::test]
async fn wrong_password_is_unauthenticated_naming_connector_and_registry_needs_registry() {
    let (host, creds) = services::auth_registry();
    let user = creds.username.as_str();
    let joined = format!("{user}:{}", creds.password);
    let image = cs::push(&host, "team/wrong", Some(&joined), "wrong password");
    let wrong = "not-the-password-0xC0FFEE";
    let r = cs::resolver(
        &connector("nexus", "DockerRegistry", &host, user),
        &[("SECRET", wrong)],
    );
    let e = cs::pull(&r, &image, &web_pod("nexus"), &host)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Unauthenticated, "{e}");
    let text = format!("{e} {e:?}");
    assert!(text.contains("project:acme/web.nexus"), "{text}");
    assert!(text.contains(&host), "{text}");
    assert!(!text.contains(wrong), "{text}");
}

#[tokio::test]
async fn connectors_check_reports_ok_and_refused_without_the_secret_needs_registry() {
    let (host, creds) = services::auth_registry();
    let user = creds.username.as_str();
    let good = cs::resolver(
        &connector("nexus", "DockerRegistry", &host, user),
        &[("SECRET", creds.password.as_str())],
    );
    let client = std::sync::Arc::new(
        hoist::registry::Client::new(&hoist::registry::Options {
            insecure: vec![host.clone()],
            ..Default::default()
        })
        .unwrap(),
    );
    let rows = hoist::connectors::check::check(&good, &client, None).await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].result.is_ok(), "{:?}", rows[0].result);
    let wrong = "wrong-password-for-check";
    let bad = cs::resolver(
        &connector("nexus", "DockerRegistry", &host, user),
        &[("SECRET", wrong)],
    );
    let rows = hoist::connectors::check::check(&bad, &client, Some("nexus")).await;
    let table = hoist::connectors::check::table(&rows);
    assert!(table.contains("FAILED") && table.contains(&host), "{table}");
    assert!(!table.contains(wrong), "{table}");
}
