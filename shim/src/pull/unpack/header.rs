//! Reading an entry's metadata from its tar header and PAX records: owner, mode, times (PAX
//! `mtime`/`atime` with sub-second precision, bounded like containerd's `boundTime`) and
//! `SCHILY.xattr.*` extended attributes.

use std::io::{self, Read};
use std::path::Path;

use rustix::fs::{Gid, Mode, Timespec, Uid};

use super::dirs::Times;
use super::error::{Error, Result};
use super::node::Meta;

const XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

/// Reads the metadata of `entry`, whose cleaned path is `path`.
pub(super) fn meta<R: Read>(entry: &mut tar::Entry<'_, R>, path: &Path) -> Result<Meta> {
    let header = entry.header();
    let invalid = |field: &'static str| {
        move |source: io::Error| Error::InvalidHeader {
            path: path.to_owned(),
            field,
            source,
        }
    };
    let old = header.as_old();
    let mode = numeric(header.mode(), &old.mode, path, "mode")? & 0o7777;
    let (uid, gid) = owner(header, path)?;
    let mtime = seconds(numeric(header.mtime(), &old.mtime, path, "mtime")?);
    // Go's reader (and so containerd) reads a GNU header's atime when it is set.
    let mut atime = header
        .as_gnu()
        .and_then(|gnu| gnu.atime().ok())
        .filter(|&secs| secs != 0)
        .map(seconds);
    let mut times = Times {
        atime: mtime,
        mtime,
    };
    let mut xattrs = Vec::new();
    if let Some(records) = entry.pax_extensions().map_err(invalid("pax records"))? {
        for record in records {
            let record = record.map_err(invalid("pax records"))?;
            match record.key_bytes() {
                b"mtime" => times.mtime = pax_time(record.value_bytes(), path, "pax mtime")?,
                b"atime" => atime = Some(pax_time(record.value_bytes(), path, "pax atime")?),
                key => {
                    if let Some(name) = key.strip_prefix(XATTR_PREFIX) {
                        xattrs.push((name.to_vec(), record.value_bytes().to_vec()));
                    }
                }
            }
        }
    }
    // containerd sets atime to the later of atime and mtime (`latestTime`).
    times.atime = atime.map_or(times.mtime, |atime| atime.max(times.mtime));
    Ok(Meta {
        uid,
        gid,
        mode: Mode::from_bits_retain(mode),
        times,
        xattrs,
    })
}

/// Numeric owner and group (PAX `uid`/`gid` are already folded in by the tar crate). `u32::MAX`
/// is refused: to `chown` it means "leave unchanged".
pub(super) fn owner(header: &tar::Header, path: &Path) -> Result<(Uid, Gid)> {
    let id = |value: io::Result<u64>, raw: &[u8], field: &'static str| -> Result<u32> {
        let value = numeric(value, raw, path, field)?;
        match u32::try_from(value) {
            Ok(id) if id != u32::MAX => Ok(id),
            _ => Err(Error::OutOfRange {
                path: path.to_owned(),
                field,
                value,
            }),
        }
    };
    let old = header.as_old();
    let uid = id(header.uid(), &old.uid, "uid")?;
    let gid = id(header.gid(), &old.gid, "gid")?;
    Ok((Uid::from_raw(uid), Gid::from_raw(gid)))
}

/// Device numbers of a character or block device entry (zero in headers that have none).
pub(super) fn device(header: &tar::Header, path: &Path) -> Result<rustix::fs::Dev> {
    let (raw_major, raw_minor): (&[u8], &[u8]) = match (header.as_ustar(), header.as_gnu()) {
        (Some(ustar), _) => (&ustar.dev_major, &ustar.dev_minor),
        (_, Some(gnu)) => (&gnu.dev_major, &gnu.dev_minor),
        // Old headers have no device fields; the tar crate reads them as `None`.
        _ => (&[], &[]),
    };
    let major = numeric(header.device_major(), raw_major, path, "device major")?;
    let minor = numeric(header.device_minor(), raw_minor, path, "device minor")?;
    Ok(rustix::fs::makedev(
        major.unwrap_or_default(),
        minor.unwrap_or_default(),
    ))
}

/// Parses a numeric header field from the tar crate's reading and the field's raw bytes. Go's
/// reader (and so containerd) reads a field of only NULs and spaces as 0 where the tar crate
/// fails, and some tools leave such fields.
fn numeric<T: Default>(
    value: io::Result<T>,
    raw: &[u8],
    path: &Path,
    field: &'static str,
) -> Result<T> {
    match value {
        Ok(value) => Ok(value),
        Err(_) if raw.iter().all(|&b| b == 0 || b == b' ') => Ok(T::default()),
        Err(source) => Err(Error::InvalidHeader {
            path: path.to_owned(),
            field,
            source,
        }),
    }
}

/// Latest time `utimensat` takes from containerd (`time.Unix(0, 1<<63-1)`, in 2262).
const MAX_SECONDS: i64 = i64::MAX / 1_000_000_000;

/// Whole seconds since the epoch; out of range becomes the epoch, as in containerd's `boundTime`.
fn seconds(secs: u64) -> Timespec {
    let tv_sec = i64::try_from(secs)
        .ok()
        .filter(|&s| s <= MAX_SECONDS)
        .unwrap_or(0);
    Timespec { tv_sec, tv_nsec: 0 }
}

/// A PAX time: decimal seconds with an optional sign and fraction (POSIX pax, "mtime").
fn pax_time(value: &[u8], path: &Path, field: &'static str) -> Result<Timespec> {
    let invalid = || Error::InvalidHeader {
        path: path.to_owned(),
        field,
        source: io::Error::new(
            io::ErrorKind::InvalidData,
            String::from_utf8_lossy(value).into_owned(),
        ),
    };
    let (negative, digits) = match value.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let mut parts = digits.splitn(2, |&b| b == b'.');
    let whole = parts.next().unwrap_or_default();
    let fraction = parts.next().unwrap_or_default();
    let all_digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return Err(invalid());
    }
    if negative {
        // Before the epoch: bounded to the epoch like containerd.
        return Ok(Timespec::default());
    }
    let mut secs: i64 = 0;
    for &d in whole {
        secs = match secs
            .checked_mul(10)
            .and_then(|s| s.checked_add(i64::from(d - b'0')))
        {
            Some(s) if s <= MAX_SECONDS => s,
            _ => return Ok(Timespec::default()),
        };
    }
    let mut nanos: i64 = 0;
    for i in 0..9 {
        nanos = nanos * 10 + fraction.get(i).map_or(0, |&d| i64::from(d - b'0'));
    }
    Ok(Timespec {
        tv_sec: secs,
        tv_nsec: nanos,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn blank_numeric_fields_read_as_zero_and_garbage_is_refused() {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Char);
        let path = Path::new("f");
        // All-NUL fields, as `Header::new_gnu` leaves them.
        let (uid, gid) = owner(&header, path).unwrap();
        assert_eq!((uid.as_raw(), gid.as_raw()), (0, 0));
        assert_eq!(device(&header, path).unwrap(), rustix::fs::makedev(0, 0));
        header.as_old_mut().uid = *b"  \0     ";
        assert_eq!(owner(&header, path).unwrap().0.as_raw(), 0);
        header.as_old_mut().uid = *b"12x4567\0";
        assert!(matches!(
            owner(&header, path),
            Err(Error::InvalidHeader { field: "uid", .. })
        ));
    }

    #[test]
    fn pax_time_parses_fractions_and_bounds_out_of_range_to_epoch() {
        let ts = |tv_sec, tv_nsec| Timespec { tv_sec, tv_nsec };
        let cases: &[(&str, Timespec)] = &[
            ("1700000000", ts(1_700_000_000, 0)),
            ("1700000000.5", ts(1_700_000_000, 500_000_000)),
            ("1.123456789123", ts(1, 123_456_789)),
            ("0.", ts(0, 0)),
            ("-1.5", ts(0, 0)),
            ("99999999999999999999999", ts(0, 0)),
        ];
        for (raw, want) in cases {
            assert_eq!(
                pax_time(raw.as_bytes(), Path::new("f"), "mtime").unwrap(),
                *want,
                "{raw}"
            );
        }
        for raw in ["", "x", "1.x", ".5", "1e9", "--1"] {
            assert!(
                pax_time(raw.as_bytes(), Path::new("f"), "mtime").is_err(),
                "{raw}"
            );
        }
    }
}
