//! Leases: a lease holds everything created under it (content, snapshots, images) against
//! containerd's garbage collector. Hoist takes one per registration and deletes it at the end;
//! the `containerd.io/gc.expire` label makes containerd drop it by itself if Hoist dies first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tonic::metadata::AsciiMetadataValue;

use super::{Client, Result, header, rpc};
use crate::proto::containerd::services::leases::v1 as api;

/// The label containerd reads a lease's expiry from (RFC 3339).
pub const EXPIRE_LABEL: &str = "containerd.io/gc.expire";

/// A lease in containerd.
#[derive(Debug, Clone)]
pub struct Lease {
    id: String,
    header: AsciiMetadataValue,
}

impl Lease {
    /// The lease ID.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(super) fn header(&self) -> &AsciiMetadataValue {
        &self.header
    }
}

/// A lease ID unique on this node: process, time and a counter.
fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("hoist-{nanos}-{}-{n}", std::process::id())
}

/// `t` in RFC 3339 UTC (`2006-01-02T15:04:05Z`), as Go's `time.Parse(time.RFC3339, ..)` reads.
pub(super) fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (hour, minute, second) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Days to civil date (Howard Hinnant's algorithm), valid for every date after 1970.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

impl Client {
    /// Creates a lease that containerd deletes by itself after `expire`.
    pub async fn create_lease(&self, expire: Duration) -> Result<Lease> {
        let id = new_id();
        let header = header("lease", &id)?;
        let expiry = rfc3339(SystemTime::now() + expire);
        let request = self.request(
            api::CreateRequest {
                id: id.clone(),
                labels: [(EXPIRE_LABEL.to_owned(), expiry)].into(),
            },
            None,
        );
        api::leases_client::LeasesClient::new(self.channel.clone())
            .create(request)
            .await
            .map_err(rpc("leases.Create", &id))?;
        Ok(Lease { id, header })
    }

    /// Deletes `lease`: what it held is now kept only by references (image records, labels).
    /// A lease already gone (expired) is not an error.
    pub async fn delete_lease(&self, lease: Lease) -> Result<()> {
        let request = self.request(
            api::DeleteRequest {
                id: lease.id.clone(),
                sync: false,
            },
            None,
        );
        match api::leases_client::LeasesClient::new(self.channel.clone())
            .delete(request)
            .await
        {
            Ok(_) => Ok(()),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(()),
            Err(status) => Err(rpc("leases.Delete", &lease.id)(status)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_in_utc() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (4_102_444_799, "2099-12-31T23:59:59Z"),
        ];
        for (secs, expected) in cases {
            assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(secs)), expected);
        }
    }

    #[test]
    fn lease_ids_are_unique_header_values() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert!(header("lease", &a).is_ok());
    }
}
