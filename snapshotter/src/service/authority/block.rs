//! Rewriting `:authority` inside one HPACK header block (RFC 7541), keeping its length.
//!
//! [`Block`] keeps a copy of the client's dynamic table (a `loona-hpack` decoder fed every block
//! the client sends) so that it knows each field's name, even one given by a dynamic-table
//! index. It then walks the block's representations (RFC 7541 §6) and re-encodes the value of
//! an `:authority` literal that is not a valid URI authority as a plain (not Huffman-coded)
//! string of the same decoded length, with the same representation and name. A dynamic-table
//! entry's size counts the decoded length (§4.1), so the server's table stays the client's.

use std::borrow::Cow;

/// The name whose value is rewritten.
const AUTHORITY: &[u8] = b":authority";

/// Why a block could not be read; the connection then passes through untouched and the HTTP/2
/// server answers the fault itself.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The HPACK decoder refused the block.
    #[error("header block does not decode: {0}")]
    Decode(String),
    /// The block's representations do not match the fields it decoded to.
    #[error("header block ends inside a representation")]
    Truncated,
}

/// The client's side of one connection's HPACK state.
pub struct Block {
    decoder: loona_hpack::Decoder<'static>,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block").finish_non_exhaustive()
    }
}

impl Default for Block {
    fn default() -> Self {
        Self::new()
    }
}

impl Block {
    /// A connection's state before its first header block.
    pub fn new() -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        // The table size h2 (under tonic) advertises and holds clients to.
        decoder.set_max_allowed_table_size(4096);
        Block { decoder }
    }

    /// Reads the complete header block `block` (the fragments of a HEADERS frame and its
    /// CONTINUATION frames, joined) and returns it rewritten, or `None` when it needs no change.
    /// After an error the table no longer matches the client's, so the caller stops rewriting.
    pub fn rewrite(&mut self, block: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let mut fields: Vec<(Vec<u8>, bool)> = Vec::new();
        self.decoder
            .decode_with_cb(block, |name: Cow<'_, [u8]>, value: Cow<'_, [u8]>| {
                let rewrite = *name == *AUTHORITY && !is_valid(&value);
                fields.push((name.into_owned(), rewrite));
            })
            .map_err(|e| Error::Decode(format!("{e:?}")))?;
        if !fields.iter().any(|(_, rewrite)| *rewrite) {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(block.len() + 16);
        let mut fields = fields.into_iter();
        let mut p = 0;
        while p < block.len() {
            let first = block[p];
            if first & 0x80 != 0 {
                // Indexed field (§6.1): nothing to rewrite in a reference.
                let (_, n) = integer(&block[p..], 7).ok_or(Error::Truncated)?;
                fields.next().ok_or(Error::Truncated)?;
                out.extend_from_slice(&block[p..p + n]);
                p += n;
                continue;
            }
            if first & 0xe0 == 0x20 {
                // Dynamic table size update (§6.3): no field.
                let (_, n) = integer(&block[p..], 5).ok_or(Error::Truncated)?;
                out.extend_from_slice(&block[p..p + n]);
                p += n;
                continue;
            }
            // Literal field, with incremental indexing (§6.2.1, 6-bit index) or without
            // (§6.2.2, §6.2.3: 4-bit index).
            let prefix = if first & 0xc0 == 0x40 { 6 } else { 4 };
            let (index, n) = integer(&block[p..], prefix).ok_or(Error::Truncated)?;
            let mut name_end = p + n;
            if index == 0 {
                name_end += string_len(&block[name_end..]).ok_or(Error::Truncated)?;
            }
            let value_len = string_len(&block[name_end..]).ok_or(Error::Truncated)?;
            let value_end = name_end + value_len;
            let (_, rewrite) = fields.next().ok_or(Error::Truncated)?;
            if rewrite {
                out.extend_from_slice(&block[p..name_end]);
                let value = decoded(&block[name_end..value_end]).ok_or(Error::Truncated)?;
                put_string(&mut out, &sanitize(&value));
            } else {
                out.extend_from_slice(&block[p..value_end]);
            }
            p = value_end;
        }
        if fields.next().is_some() {
            return Err(Error::Truncated);
        }
        Ok(Some(out))
    }
}

/// Whether `h2` accepts `value` as `:authority`: it parses it with the same function.
fn is_valid(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

/// `value` with every byte outside RFC 3986's unreserved set replaced by `-`: a valid reg-name
/// of the same length (`/run/hoist/cri.sock` becomes `-run-hoist-cri.sock`).
pub fn sanitize(value: &[u8]) -> Vec<u8> {
    value
        .iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => b,
            _ => b'-',
        })
        .collect()
}

/// An HPACK integer with an N-bit prefix at the start of `buf` (§5.1): its value and how many
/// bytes it takes. `None` when `buf` ends first or the value does not fit in 32 bits (no
/// length or index in a header block does).
fn integer(buf: &[u8], prefix: u32) -> Option<(u32, usize)> {
    let mask = (1u32 << prefix) - 1;
    let first = u32::from(*buf.first()?) & mask;
    if first < mask {
        return Some((first, 1));
    }
    let mut value = u64::from(mask);
    let mut shift = 0u32;
    for (i, &b) in buf.iter().enumerate().skip(1) {
        value += u64::from(b & 0x7f) << shift;
        if value > u64::from(u32::MAX) {
            return None;
        }
        if b & 0x80 == 0 {
            return Some((u32::try_from(value).ok()?, i + 1));
        }
        shift += 7;
    }
    None
}

/// How many bytes the string literal at the start of `buf` takes (§5.2).
fn string_len(buf: &[u8]) -> Option<usize> {
    let (len, n) = integer(buf, 7)?;
    let end = n.checked_add(usize::try_from(len).ok()?)?;
    (end <= buf.len()).then_some(end)
}

/// The decoded bytes of the string literal that is exactly `buf`.
fn decoded(buf: &[u8]) -> Option<Vec<u8>> {
    let (_, n) = integer(buf, 7)?;
    let data = &buf[n..];
    if buf[0] & 0x80 == 0 {
        return Some(data.to_vec());
    }
    loona_hpack::huffman::HuffmanDecoder::new()
        .decode(data)
        .ok()
}

/// Appends `value` as a plain string literal (§5.2, H = 0).
fn put_string(out: &mut Vec<u8>, value: &[u8]) {
    loona_hpack::encoder::encode_integer_into(value.len(), 7, 0, out)
        .expect("writing to a Vec cannot fail");
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests;
