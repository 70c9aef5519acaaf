//! The `Aws` connector against moto (ECR `GetAuthorizationToken`, STS
//! `AssumeRoleWithWebIdentity`) and a docker-registry whose basic-auth user is `AWS` with
//! moto's token as password: access keys, web identity, token caching and renewal.

use std::time::Duration;

use hoist::connectors::{PodContext, Source};
use hoist::error::Kind;
use hoist::registry::Credentials;

use crate::connector_services::{self as cs, ecr_registry, moto};

const MOTO_PASSWORD: &str = "123456789012-auth-token";

fn config(auth: &str) -> String {
    format!(
        "default_connector = \"account.ecr\"\n[[connector]]\nid = \"ecr\"\nscope = \"account\"\n\
         type = \"Aws\"\nregistry = \"{}\"\n\
         auth = {{ region = \"us-east-1\", endpoint_url = \"{}\", {auth} }}\n",
        ecr_registry(),
        moto()
    )
}

const KEYS: &str =
    "access_key_id = { env = \"AWS_KEY\" }, secret_access_key = { env = \"AWS_SECRET\" }";
const ENV: &[(&str, &str)] = &[
    ("AWS_KEY", "AKIDHOISTTEST"),
    ("AWS_SECRET", "hoist-aws-secret-value"),
];

fn expect_moto_token(c: &Credentials) {
    match c {
        Credentials::Basic { username, password } => {
            assert_eq!(username, "AWS");
            assert_eq!(password.expose(), MOTO_PASSWORD);
        }
        other => panic!("expected AWS basic credentials, got {other:?}"),
    }
}

#[tokio::test]
async fn ecr_with_access_keys_pulls_and_caches_the_token_needs_registry() {
    let registry = ecr_registry();
    let image = cs::push(
        &registry,
        "ecr/keys",
        Some(&format!("AWS:{MOTO_PASSWORD}")),
        "ecr keys",
    );
    let r = cs::resolver(&config(KEYS), ENV);
    let pod = PodContext::default();
    let first = r
        .resolve(&image.parse().unwrap(), &pod, None)
        .await
        .unwrap();
    assert_eq!(first.source, Source::Default);
    expect_moto_token(&first.credentials);
    cs::pull(&r, &image, &pod, &registry).await.unwrap();
    // moto's expiresAt is in 2015: without a floor between refreshes every pull would call it.
    for _ in 0..5 {
        r.resolve(&image.parse().unwrap(), &pod, None)
            .await
            .unwrap();
    }
    assert_eq!(r.metrics().token_fetches(&registry.to_string()), 1);
}

#[tokio::test]
async fn ecr_token_is_renewed_after_expiry_and_the_refresh_floor_needs_registry() {
    let registry = ecr_registry();
    let r = cs::resolver(&config(&format!("{KEYS}, min_refresh_secs = 1")), ENV);
    let image: hoist::Reference = format!("{registry}/ecr/renew:v1").parse().unwrap();
    let pod = PodContext::default();
    r.resolve(&image, &pod, None).await.unwrap();
    r.resolve(&image, &pod, None).await.unwrap();
    assert_eq!(
        r.metrics().token_fetches(&registry),
        1,
        "within the floor: cached"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let renewed = r.resolve(&image, &pod, None).await.unwrap();
    expect_moto_token(&renewed.credentials);
    assert_eq!(
        r.metrics().token_fetches(&registry),
        2,
        "expired and past the floor: renewed"
    );
}

#[tokio::test]
async fn ecr_with_web_identity_pulls_needs_registry() {
    let registry = ecr_registry();
    let image = cs::push(
        &registry,
        "ecr/oidc",
        Some(&format!("AWS:{MOTO_PASSWORD}")),
        "ecr oidc",
    );
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(
        &token,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6d3M6aG9pc3QifQ.c2ln\n",
    )
    .unwrap();
    let auth = format!(
        "role_arn = \"arn:aws:iam::123456789012:role/hoist-pull\", web_identity_token_file = {:?}",
        token.display().to_string()
    );
    let r = cs::resolver(&config(&auth), &[]);
    let pod = PodContext::default();
    let resolved = r
        .resolve(&image.parse().unwrap(), &pod, None)
        .await
        .unwrap();
    expect_moto_token(&resolved.credentials);
    cs::pull(&r, &image, &pod, &registry).await.unwrap();
}

#[tokio::test]
async fn ecr_without_a_token_file_is_unavailable_naming_the_connector_needs_registry() {
    let auth = "role_arn = \"arn:aws:iam::123456789012:role/hoist-pull\", web_identity_token_file = \"/nonexistent/token\"";
    let r = cs::resolver(&config(auth), &[]);
    let image: hoist::Reference = format!("{}/ecr/x:v1", ecr_registry()).parse().unwrap();
    let e = r
        .resolve(&image, &PodContext::default(), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Unavailable);
    let text = e.to_string();
    assert!(
        text.contains("account.ecr") && text.contains("/nonexistent/token"),
        "{text}"
    );
}
