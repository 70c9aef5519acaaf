//! devcontainer.json as Harness Gitspaces reads it: `image`, and at most one connector in
//! `customizations.harnessGitspaces.connectors` (`{ "type": …, "identifier": … }`).
//! Comments and trailing commas are allowed (JSONC).

use serde_json::Value;

use super::{Target, WorkspaceConnector};
use crate::connectors::Type;

/// Why a devcontainer.json cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not JSON with comments.
    #[error("devcontainer.json: {0}")]
    Syntax(String),
    /// The top level is not an object.
    #[error("devcontainer.json: the top level must be an object")]
    NotObject,
    /// No `image` (images built from `build.dockerfile` are not prefetched).
    #[error("devcontainer.json: no \"image\" string (a build.dockerfile is not prefetched)")]
    NoImage,
    /// `image` is not an image reference.
    #[error("devcontainer.json: image {image:?}: {source}")]
    BadImage {
        /// The value.
        image: String,
        /// Why.
        source: crate::reference::Error,
    },
    /// More than one connector: Gitspaces allows one per workspace.
    #[error(
        "devcontainer.json: {0} connectors in customizations.harnessGitspaces.connectors; only one is allowed"
    )]
    TooManyConnectors(usize),
    /// The connector entry is malformed.
    #[error("devcontainer.json: customizations.harnessGitspaces.connectors[0]: {0}")]
    BadConnector(String),
}

/// Parses devcontainer.json text.
pub fn parse(text: &str) -> Result<Target, Error> {
    let value: Option<Value> =
        jsonc_parser::parse_to_serde_value(text, &jsonc_parser::ParseOptions::default())
            .map_err(|e| Error::Syntax(e.to_string()))?;
    let Some(Value::Object(root)) = value else {
        return Err(Error::NotObject);
    };
    let image = root
        .get("image")
        .and_then(Value::as_str)
        .ok_or(Error::NoImage)?;
    let image = image.trim().parse().map_err(|source| Error::BadImage {
        image: image.to_owned(),
        source,
    })?;
    let connectors = root
        .get("customizations")
        .and_then(|c| c.get("harnessGitspaces"))
        .and_then(|h| h.get("connectors"));
    let connector = match connectors {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) if list.len() > 1 => {
            return Err(Error::TooManyConnectors(list.len()));
        }
        Some(Value::Array(list)) => list.first().map(connector).transpose()?,
        Some(_) => {
            return Err(Error::BadConnector(
                "customizations.harnessGitspaces.connectors must be a list".into(),
            ));
        }
    };
    Ok(Target { image, connector })
}

fn connector(entry: &Value) -> Result<WorkspaceConnector, Error> {
    let field = |name: &str| {
        entry
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| Error::BadConnector(format!("no \"{name}\" string")))
    };
    let kind = field("type")?;
    let kind: Type = kind.parse().map_err(|()| {
        Error::BadConnector(format!(
            "type {kind:?} is not DockerRegistry, Artifactory, Aws or Gcr"
        ))
    })?;
    let reference = field("identifier")?
        .parse()
        .map_err(|e: crate::connectors::scope::Error| Error::BadConnector(e.to_string()))?;
    Ok(WorkspaceConnector { kind, reference })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample from the Gitspaces page (seeds/000), with a comment and trailing commas.
    const SAMPLE: &str = r#"{
      // the workspace image
      "image": "khushisharma22/trial-demo:v2",
      "customizations": {
        "harnessGitspaces": {
          "connectors": [
            {
              "type": "Artifactory",
              "identifier": "testdemo",
            },
          ],
        },
      },
      "vscode": {
        "extensions": ["streetsidesoftware.code-spell-checker"]
      }
    }"#;

    #[test]
    fn reads_the_gitspaces_sample() {
        let t = parse(SAMPLE).unwrap();
        assert_eq!(
            t.image.to_string(),
            "docker.io/khushisharma22/trial-demo:v2"
        );
        let c = t.connector.unwrap();
        assert_eq!(c.kind, Type::Artifactory);
        assert_eq!(c.reference.to_string(), "testdemo");
    }

    #[test]
    fn scope_prefixes_and_no_connector() {
        let t = parse(r#"{"image": "211125722538.dkr.ecr.us-east-1.amazonaws.com/private-ubuntu:latest",
            "customizations": {"harnessGitspaces": {"connectors": [{"type": "Aws", "identifier": "account.ecr"}]}}}"#).unwrap();
        assert_eq!(t.connector.unwrap().reference.to_string(), "account.ecr");
        let t =
            parse(r#"{"image": "harness-ken-docker-repo-1.jfrog.io/base:dev-ubuntu"}"#).unwrap();
        assert!(t.connector.is_none());
    }

    #[test]
    fn broken_files_give_clear_errors() {
        let two = r#"{"image": "a", "customizations": {"harnessGitspaces": {"connectors": [
            {"type": "Aws", "identifier": "a"}, {"type": "Aws", "identifier": "b"}]}}}"#;
        let cases: [(&str, &str); 8] = [
            ("{\"image\": ", "devcontainer.json:"),
            ("[]", "top level must be an object"),
            (r#"{"build": {"dockerfile": "Dockerfile"}}"#, "no \"image\""),
            (r#"{"image": "team/App:1"}"#, "image \"team/App:1\""),
            (two, "2 connectors"),
            (
                r#"{"image": "a", "customizations": {"harnessGitspaces": {"connectors": [{"type": "Nexus", "identifier": "a"}]}}}"#,
                "type \"Nexus\"",
            ),
            (
                r#"{"image": "a", "customizations": {"harnessGitspaces": {"connectors": [{"type": "Aws"}]}}}"#,
                "no \"identifier\"",
            ),
            (
                r#"{"image": "a", "customizations": {"harnessGitspaces": {"connectors": [{"type": "Aws", "identifier": "org.a.b"}]}}}"#,
                "org.a.b",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
