//! The tar stream of one layer, written entry by entry.
//!
//! Headers are POSIX ustar; whatever ustar cannot hold goes into a PAX extended header (POSIX
//! 1003.1-2001) before the entry, as Go's `archive/tar` (and so containerd and Docker) writes it:
//! `path` and `linkpath` longer than 100 bytes, and `SCHILY.xattr.NAME` for extended attributes.

use std::collections::HashMap;
use std::io::{self, Read, Write};

use tar::{EntryType, Header};

use super::{Entry, Error, Meta, Result, clean_path};

const BLOCK: usize = 512;
/// Bytes of the ustar `name` and `linkname` fields.
const NAME_FIELD: usize = 100;

/// Writes `entries` as one tar stream to `out`, ends it with two zero blocks and returns `out`.
/// `layer` (the layer's index) only labels errors.
pub(crate) fn write_tar<W: Write>(entries: &[Entry], out: W, layer: usize) -> Result<W> {
    let mut writer = TarWriter {
        out,
        buffer: vec![0; 64 * 1024],
    };
    // Metadata of the non-directories written so far, for hard links to copy.
    let mut written: HashMap<String, &Meta> = HashMap::new();
    for entry in entries {
        let name = entry.tar_name()?;
        let fail = |source| Error::Layer {
            layer,
            entry: name.clone(),
            source,
        };
        match entry {
            Entry::Hardlink { path, target } => {
                let target_name = clean_path(target)?;
                let meta =
                    written
                        .get(&target_name)
                        .copied()
                        .ok_or_else(|| Error::HardlinkTarget {
                            path: path.clone(),
                            target: target.clone(),
                        })?;
                let header = header(EntryType::Link, meta, 0);
                writer
                    .append(header, &name, Some(&target_name), meta, None)
                    .map_err(fail)?;
            }
            Entry::Whiteout { .. } | Entry::Opaque { .. } => {
                let meta = Meta::with_mode(0o644);
                writer
                    .append(
                        header(EntryType::Regular, &meta, 0),
                        &name,
                        None,
                        &meta,
                        None,
                    )
                    .map_err(fail)?;
            }
            Entry::File { content, meta, .. } => {
                let header = header(EntryType::Regular, meta, content.len());
                let mut reader = content.reader();
                writer
                    .append(
                        header,
                        &name,
                        None,
                        meta,
                        Some((&mut reader, content.len())),
                    )
                    .map_err(fail)?;
                written.insert(name.clone(), meta);
            }
            Entry::Dir { meta, .. } => {
                let header = header(EntryType::Directory, meta, 0);
                writer
                    .append(header, &format!("{name}/"), None, meta, None)
                    .map_err(fail)?;
            }
            Entry::Symlink { target, meta, .. } => {
                let header = header(EntryType::Symlink, meta, 0);
                writer
                    .append(header, &name, Some(target), meta, None)
                    .map_err(fail)?;
                written.insert(name.clone(), meta);
            }
            Entry::Fifo { meta, .. } => {
                writer
                    .append(header(EntryType::Fifo, meta, 0), &name, None, meta, None)
                    .map_err(fail)?;
                written.insert(name.clone(), meta);
            }
            Entry::CharDevice {
                major, minor, meta, ..
            } => {
                let mut header = header(EntryType::Char, meta, 0);
                header.set_device_major(*major).map_err(fail)?;
                header.set_device_minor(*minor).map_err(fail)?;
                writer
                    .append(header, &name, None, meta, None)
                    .map_err(fail)?;
                written.insert(name.clone(), meta);
            }
        }
    }
    writer
        .out
        .write_all(&[0; 2 * BLOCK])
        .map_err(|source| Error::Layer {
            layer,
            entry: "end of archive".into(),
            source,
        })?;
    Ok(writer.out)
}

/// A ustar header of this type, metadata and size; name and link name are set by `append`.
fn header(kind: EntryType, meta: &Meta, size: u64) -> Header {
    let mut header = Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(meta.mode);
    header.set_uid(meta.uid);
    header.set_gid(meta.gid);
    header.set_mtime(meta.mtime);
    header.set_size(size);
    header
}

struct TarWriter<W> {
    out: W,
    buffer: Vec<u8>,
}

impl<W: Write> TarWriter<W> {
    /// Writes a PAX header when needed, then the entry's header, data and padding.
    fn append(
        &mut self,
        mut header: Header,
        name: &str,
        link: Option<&str>,
        meta: &Meta,
        data: Option<(&mut dyn Read, u64)>,
    ) -> io::Result<()> {
        let mut records = Vec::new();
        if name.len() > NAME_FIELD {
            pax_record(&mut records, "path", name.as_bytes());
        }
        if let Some(link) = link.filter(|link| link.len() > NAME_FIELD) {
            pax_record(&mut records, "linkpath", link.as_bytes());
        }
        for (key, value) in &meta.xattrs {
            pax_record(&mut records, &format!("SCHILY.xattr.{key}"), value);
        }
        if !records.is_empty() {
            let mut pax = Header::new_ustar();
            pax.set_entry_type(EntryType::XHeader);
            pax.set_mode(0o644);
            pax.set_size(records.len() as u64);
            set_field(&mut pax.as_old_mut().name, "././@PaxHeader");
            pax.set_cksum();
            self.out.write_all(pax.as_bytes())?;
            self.out.write_all(&records)?;
            pad(&mut self.out, records.len() as u64)?;
        }

        // Ustar fields hold the first 100 bytes; readers take the full text from the PAX record.
        set_field(&mut header.as_old_mut().name, name);
        if let Some(link) = link {
            set_field(&mut header.as_old_mut().linkname, link);
        }
        header.set_cksum();
        self.out.write_all(header.as_bytes())?;
        if let Some((reader, size)) = data {
            let copied = self.copy(reader, size)?;
            if copied != size {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("content ended after {copied} of {size} bytes"),
                ));
            }
            pad(&mut self.out, size)?;
        }
        Ok(())
    }

    /// Copies at most `size` bytes through a 64 KiB buffer (larger than `io::copy`'s 8 KiB, which
    /// matters at gigabytes per image).
    fn copy(&mut self, reader: &mut dyn Read, size: u64) -> io::Result<u64> {
        let mut copied = 0;
        while copied < size {
            let want = (size - copied).min(self.buffer.len() as u64) as usize;
            let n = reader.read(&mut self.buffer[..want])?;
            if n == 0 {
                break;
            }
            self.out.write_all(&self.buffer[..n])?;
            copied += n as u64;
        }
        Ok(copied)
    }
}

/// Copies as much of `text` as fits into a NUL-padded header field.
fn set_field(field: &mut [u8], text: &str) {
    let bytes = text.as_bytes();
    let n = bytes.len().min(field.len());
    field[..n].copy_from_slice(&bytes[..n]);
    field[n..].fill(0);
}

/// Appends one PAX record, `"<len> <key>=<value>\n"`, where `<len>` counts the whole record,
/// its own digits included.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Zero bytes up to the next 512-byte boundary after `len` bytes of data.
fn pad(out: &mut impl Write, len: u64) -> io::Result<()> {
    let rem = (len % BLOCK as u64) as usize;
    if rem != 0 {
        out.write_all(&[0; BLOCK][..BLOCK - rem])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Content;

    /// Path, type, link name, data and xattrs of one entry read back.
    type ReadBack = (
        String,
        EntryType,
        Option<String>,
        Vec<u8>,
        Vec<(String, Vec<u8>)>,
    );

    fn read_back(entries: &[Entry]) -> Vec<ReadBack> {
        let bytes = write_tar(entries, Vec::new(), 0).unwrap();
        assert_eq!(bytes.len() % BLOCK, 0);
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let link = entry
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned());
            let kind = entry.header().entry_type();
            let xattrs = match entry.pax_extensions().unwrap() {
                Some(exts) => exts
                    .map(|e| e.unwrap())
                    .filter_map(|e| {
                        let key = e.key().unwrap().strip_prefix("SCHILY.xattr.")?.to_owned();
                        Some((key, e.value_bytes().to_vec()))
                    })
                    .collect(),
                None => Vec::new(),
            };
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            out.push((path, kind, link, data, xattrs));
        }
        out
    }

    #[test]
    fn pax_record_length_counts_itself() {
        for value_len in [0usize, 1, 5, 6, 7, 95, 96, 97, 990, 995, 996] {
            let mut out = Vec::new();
            pax_record(&mut out, "path", &vec![b'a'; value_len]);
            let text = String::from_utf8(out.clone()).unwrap();
            let (len, _) = text.split_once(' ').unwrap();
            assert_eq!(
                len.parse::<usize>().unwrap(),
                out.len(),
                "value length {value_len}"
            );
        }
    }

    #[test]
    fn long_names_links_and_xattrs_round_trip() {
        let long_dir = "d".repeat(120);
        let long_file = format!("{long_dir}/{}", "f".repeat(150));
        let long_target = format!("/{}", "t".repeat(200));
        let entries = vec![
            Entry::dir(long_dir.clone()).with_xattr("user.dir", "yes"),
            Entry::file(long_file.clone(), "data").with_xattr("user.k", vec![0u8, 1, 2]),
            Entry::symlink("link", long_target.clone()),
            Entry::hardlink(format!("{long_dir}/hard"), long_file.clone()),
            Entry::whiteout("etc/gone"),
            Entry::opaque("var"),
            Entry::fifo("pipe"),
            Entry::char_device("dev/null", 1, 3),
        ];
        let got = read_back(&entries);
        let summary: Vec<_> = got
            .iter()
            .map(|(p, k, l, _, _)| (p.clone(), *k, l.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (format!("{long_dir}/"), EntryType::Directory, None),
                (long_file.clone(), EntryType::Regular, None),
                ("link".into(), EntryType::Symlink, Some(long_target)),
                (format!("{long_dir}/hard"), EntryType::Link, Some(long_file)),
                ("etc/.wh.gone".into(), EntryType::Regular, None),
                ("var/.wh..wh..opq".into(), EntryType::Regular, None),
                ("pipe".into(), EntryType::Fifo, None),
                ("dev/null".into(), EntryType::Char, None),
            ]
        );
        assert_eq!(got[0].4, vec![("user.dir".to_owned(), b"yes".to_vec())]);
        assert_eq!(got[1].3, b"data");
        assert_eq!(got[1].4, vec![("user.k".to_owned(), vec![0, 1, 2])]);
    }

    #[test]
    fn generated_content_is_written_in_full() {
        let entries = vec![Entry::file(
            "big",
            Content::Generated {
                seed: 1,
                size: 200_001,
            },
        )];
        let got = read_back(&entries);
        let mut expected = Vec::new();
        Content::Generated {
            seed: 1,
            size: 200_001,
        }
        .reader()
        .read_to_end(&mut expected)
        .unwrap();
        assert_eq!(got[0].3, expected);
    }

    #[test]
    fn hardlink_needs_an_earlier_target() {
        let entries = vec![Entry::hardlink("a", "b"), Entry::file("b", "x")];
        assert!(matches!(
            write_tar(&entries, Vec::new(), 0),
            Err(Error::HardlinkTarget { .. })
        ));
    }
}
