//! `hoist connectors check`: for each connector, obtain its credentials and send an
//! authenticated `GET /v2/` (with a token fetch where the registry asks for one), timing both.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::Type;
use super::connector::Connector;
use super::resolve::Resolver;
use super::scope::Scope;
use crate::registry::Client;

/// One connector's result.
#[derive(Debug)]
pub struct Row {
    /// `account.hub`-style name.
    pub connector: String,
    /// Its type.
    pub kind: Type,
    /// Its scope.
    pub scope: Scope,
    /// The registry checked.
    pub registry: String,
    /// `Ok`, or what failed (never a secret).
    pub result: Result<(), String>,
    /// Time for credentials and the request.
    pub latency: Duration,
}

/// Checks every connector, or those whose id or full name (`account.hub`,
/// `project:acme/web.hub`) is `only`.
pub async fn check(resolver: &Resolver, client: &Arc<Client>, only: Option<&str>) -> Vec<Row> {
    let mut rows = Vec::new();
    for c in resolver.connectors() {
        if only.is_some_and(|o| o != c.id && o != c.to_string()) {
            continue;
        }
        let started = Instant::now();
        let result = one(resolver, client, c).await;
        rows.push(Row {
            connector: c.to_string(),
            kind: c.kind,
            scope: c.scope.clone(),
            registry: c.registry(),
            result,
            latency: started.elapsed(),
        });
    }
    rows
}

async fn one(resolver: &Resolver, client: &Arc<Client>, c: &Connector) -> Result<(), String> {
    let credentials = resolver.credentials(c).await.map_err(|e| e.to_string())?;
    client
        .repository(&c.host, &c.path, credentials)
        .ping()
        .await
        .map_err(|e| e.to_string())
}

/// The rows as an aligned text table.
pub fn table(rows: &[Row]) -> String {
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.connector.clone(),
                r.kind.to_string(),
                r.scope.to_string(),
                r.registry.clone(),
                match &r.result {
                    Ok(()) => "ok".into(),
                    Err(e) => format!("FAILED: {e}"),
                },
                format!("{} ms", r.latency.as_millis()),
            ]
        })
        .collect();
    let header = [
        "CONNECTOR",
        "TYPE",
        "SCOPE",
        "REGISTRY",
        "RESULT",
        "LATENCY",
    ]
    .map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&cells) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
