//! Workspace files that name images to prefetch: devcontainer.json (Harness Gitspaces, with
//! an optional connector) and .gitpod.yml (an image, or a Dockerfile whose `FROM` lines name
//! them). Each parser turns a file into [`Target`]s; [`prefetch`] pulls them.

pub mod devcontainer;
pub mod dockerfile;
pub mod gitpod;
mod prefetch;

use crate::Reference;
use crate::connectors::{ConnectorRef, Type};

pub use prefetch::{Error as PrefetchError, prefetch};

/// A connector named by a workspace file: its declared type and its reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceConnector {
    /// The type the file declares; checked against the connector's.
    pub kind: Type,
    /// `account.X`, `org.X` or `X`.
    pub reference: ConnectorRef,
}

/// One image to prefetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The image.
    pub image: Reference,
    /// The connector the file names for it, if any.
    pub connector: Option<WorkspaceConnector>,
}
