//! Conversions between the store's types and the generated protobuf types, and the one place
//! store errors become gRPC statuses.

use std::collections::{BTreeMap, HashMap};

use tonic::{Code, Status};

use crate::error::Kind as ErrorKind;
use crate::proto::containerd::services::snapshots::v1 as api;
use crate::proto::containerd::types;
use crate::store::{self, Info, Kind};

impl From<store::Error> for Status {
    fn from(e: store::Error) -> Status {
        let code = match e.kind() {
            ErrorKind::NotFound => Code::NotFound,
            ErrorKind::AlreadyExists => Code::AlreadyExists,
            ErrorKind::FailedPrecondition => Code::FailedPrecondition,
            ErrorKind::InvalidArgument => Code::InvalidArgument,
            ErrorKind::Internal => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}

/// containerd sends "" for "no parent".
pub(super) fn parent(parent: &str) -> Option<&str> {
    (!parent.is_empty()).then_some(parent)
}

pub(super) fn labels(labels: HashMap<String, String>) -> BTreeMap<String, String> {
    labels.into_iter().collect()
}

pub(super) fn mounts(mounts: Vec<crate::Mount>) -> Vec<types::Mount> {
    mounts
        .into_iter()
        .map(|m| types::Mount {
            r#type: m.kind,
            source: m.source,
            target: String::new(),
            options: m.options,
        })
        .collect()
}

fn kind(kind: Kind) -> api::Kind {
    match kind {
        Kind::Active => api::Kind::Active,
        Kind::View => api::Kind::View,
        Kind::Committed => api::Kind::Committed,
    }
}

pub(super) fn info(info: Info) -> api::Info {
    api::Info {
        name: info.name,
        parent: info.parent.unwrap_or_default(),
        kind: kind(info.kind).into(),
        created_at: Some(info.created.into()),
        updated_at: Some(info.updated.into()),
        labels: info.labels.into_iter().collect(),
    }
}

pub(super) fn usage(usage: store::Usage) -> api::UsageResponse {
    api::UsageResponse {
        size: i64::try_from(usage.size).unwrap_or(i64::MAX),
        inodes: i64::try_from(usage.inodes).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_containerd_codes() {
        let cases = [
            (store::Error::NotFound { key: "k".into() }, Code::NotFound),
            (
                store::Error::TargetExists {
                    key: "k".into(),
                    target: "t".into(),
                },
                Code::AlreadyExists,
            ),
            (
                store::Error::HasChildren { key: "k".into() },
                Code::FailedPrecondition,
            ),
            (store::Error::EmptyKey, Code::InvalidArgument),
        ];
        for (error, code) in cases {
            assert_eq!(Status::from(error).code(), code);
        }
    }
}
