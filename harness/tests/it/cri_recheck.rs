//! KEP-2535 (ensure secret-pulled images, on by default in Kubernetes 1.35): kubelet calls
//! `PullImage` again for an image already on the node when a pod brings other credentials, and
//! trusts the answer. Through `hoist serve`'s socket, with a counting proxy in front of the
//! Basic-auth registry and of the token-auth registry: refused credentials and no credentials
//! fail `Unauthenticated` although the image is present; good ones succeed with one manifest
//! answered and no blob requested.

use std::net::SocketAddr;

use hoist::proto::cri::v1::AuthConfig;
use hoist_harness::cri::PullContext;
use hoist_harness::proxy::{Logged, Proxy, Shaping};

use crate::cri_kubelet::tmp;
use crate::cri_services::Served;
use crate::token_auth::{self, TokenRegistry};
use crate::{connector_services as cs, proxy, services};

fn basic(username: &str, password: &str) -> PullContext {
    PullContext {
        auth: Some(AuthConfig {
            username: username.to_owned(),
            password: password.to_owned(),
            ..AuthConfig::default()
        }),
        ..PullContext::default()
    }
}

/// The three outcomes for `image` (on the registry behind `proxy`), present after a first pull
/// with `good`.
async fn pull_again_checks_the_registry(
    served: &Served,
    proxy: &Proxy,
    image: &str,
    good: &PullContext,
    wrong: &PullContext,
) {
    let hoist = served.hoist().await;
    let pull = |context: &PullContext| {
        let (hoist, context) = (hoist.clone(), context.clone());
        let image = image.to_owned();
        async move { hoist.pull(&image, &context).await }
    };
    let hoist_log = || served.log_tail("hoist");
    let id = pull(good)
        .await
        .unwrap_or_else(|e| panic!("first pull: {e}\n{}", hoist_log()));
    let cases = [
        ("refused credentials", wrong.clone()),
        ("no credentials", PullContext::default()),
    ];
    for (what, context) in cases {
        proxy.stats().clear_log();
        let err = pull(&context)
            .await
            .expect_err("the registry refuses this pull");
        assert_eq!(
            err.code(),
            tonic::Code::Unauthenticated,
            "{what}: {err}\n{}",
            hoist_log()
        );
        let log = proxy.stats().logged();
        assert!(
            log.iter().any(Logged::is_manifest),
            "{what}: the registry was asked, not the store: {log:?}"
        );
        assert!(
            !log.iter().any(Logged::is_blob),
            "{what}: {log:?}\n{}",
            hoist_log()
        );
        // The refusal concerns this pod only: the image stays for the pods allowed to use it.
        let present = hoist.status(image).await.unwrap().map(|i| i.id);
        assert_eq!(present.as_ref(), Some(&id), "{what}");
    }

    proxy.stats().clear_log();
    let again = pull(good)
        .await
        .unwrap_or_else(|e| panic!("pull again: {e}\n{}", hoist_log()));
    assert_eq!(again, id);
    let log = proxy.stats().logged();
    let answered: Vec<&Logged> = log
        .iter()
        .filter(|r| r.is_manifest() && (200..300).contains(&r.status))
        .collect();
    assert_eq!(
        answered.len(),
        1,
        "one manifest request answered: {log:?}\n{}",
        hoist_log()
    );
    assert!(
        !log.iter().any(Logged::is_blob),
        "no blob request: {log:?}\n{}",
        hoist_log()
    );
}

#[tokio::test]
async fn a_present_image_is_checked_with_the_pods_credentials_basic_auth_needs_containerd() {
    let test = "a_present_image_is_checked_with_the_pods_credentials_basic_auth_needs_containerd";
    if proxy::skip_unless(test, &proxy::missing()) {
        return;
    }
    let (host, creds) = services::auth_registry();
    let joined = format!("{}:{}", creds.username, creds.password);
    let pushed = cs::push(&host, "recheck/basic", Some(&joined), "basic-auth recheck");
    let upstream: SocketAddr = host.parse().unwrap();
    let proxy = Proxy::start(upstream, Shaping::default()).unwrap();
    let image = pushed.replacen(&host, &proxy.host(), 1);
    let tmp = tmp();
    let served = Served::start(tmp.path(), &[proxy.host()]);
    let good = basic(&creds.username, &creds.password);
    let wrong = basic(&creds.username, "not-the-password");
    Box::pin(pull_again_checks_the_registry(
        &served, &proxy, &image, &good, &wrong,
    ))
    .await;
}

#[tokio::test]
async fn a_present_image_is_checked_with_the_pods_credentials_token_auth_needs_containerd() {
    let test = "a_present_image_is_checked_with_the_pods_credentials_token_auth_needs_containerd";
    if proxy::skip_unless(test, &proxy::missing()) {
        return;
    }
    let issuer = token_auth::issuer();
    let registry = TokenRegistry::start(&issuer);
    let pushed = token_auth::push(&registry.host(), "recheck/token");
    let upstream: SocketAddr = registry.host().parse().unwrap();
    let proxy = Proxy::start(upstream, Shaping::default()).unwrap();
    let image = pushed.replacen(&registry.host(), &proxy.host(), 1);
    let tmp = tmp();
    let served = Served::start(tmp.path(), &[proxy.host()]);
    let good = basic(token_auth::USER, token_auth::PASSWORD);
    let wrong = basic(token_auth::USER, "not-the-token-password");
    let refused = issuer
        .stats()
        .refused
        .load(std::sync::atomic::Ordering::Relaxed);
    Box::pin(pull_again_checks_the_registry(
        &served, &proxy, &image, &good, &wrong,
    ))
    .await;
    assert!(
        issuer
            .stats()
            .refused
            .load(std::sync::atomic::Ordering::Relaxed)
            >= refused + 2,
        "the token service refused the wrong and the missing credentials"
    );
}
