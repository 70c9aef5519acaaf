//! The HTTP/2 frames a client sends (RFC 9113 §4.1), rewritten header block by header block.

use super::block::Block;

/// The client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The largest frame payload every HTTP/2 server accepts (SETTINGS_MAX_FRAME_SIZE's floor).
const MAX_FRAME: usize = 16 * 1024;
/// The most header-block bytes held while waiting for END_HEADERS; past it the connection
/// passes through untouched (and the server's own header list limit applies).
const MAX_BLOCK: usize = 1 << 20;

/// Rewrites the `:authority` of every header block in the client-to-server byte stream of one
/// connection (see the module above); any other byte passes through unchanged.
///
/// Once the stream is not what a well-behaved client sends (a bad preface, a header block split
/// by another frame, a block the HPACK decoder refuses, a block larger than [`MAX_BLOCK`]), the
/// filter stops rewriting and passes every later byte through untouched, for the server to
/// answer with the protocol error it finds.
#[derive(Debug)]
pub struct Filter {
    state: State,
    /// The frame header being read.
    header: Vec<u8>,
    /// The payload of the HEADERS or CONTINUATION frame being read.
    payload: Vec<u8>,
    /// A header block begun by a HEADERS frame without END_HEADERS.
    pending: Option<Pending>,
    block: Block,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Bytes of the preface seen so far.
    Preface(usize),
    /// Reading a frame header into `header`.
    Header,
    /// Passing through this many more bytes of a frame that is not a header block.
    Skip(usize),
    /// Reading a HEADERS or CONTINUATION payload of this length into `payload`.
    Payload(usize),
    /// Passing everything through.
    Off,
}

/// A header block whose HEADERS frame had no END_HEADERS.
#[derive(Debug)]
struct Pending {
    stream: u32,
    /// The frames as the client sent them, to forward unchanged when nothing is rewritten.
    original: Vec<u8>,
    /// The HEADERS frame's flags other than END_HEADERS and PADDED.
    flags: u8,
    /// The HEADERS frame's priority fields, when it had them.
    priority: Option<[u8; 5]>,
    fragments: Vec<u8>,
}

impl Default for Filter {
    fn default() -> Self {
        Self::new()
    }
}

impl Filter {
    /// The filter for a new connection.
    pub fn new() -> Self {
        Filter {
            state: State::Preface(0),
            header: Vec::with_capacity(HEADER_LEN),
            payload: Vec::new(),
            pending: None,
            block: Block::new(),
        }
    }

    /// Takes the next bytes the client sent and appends what the server is to read to `out`.
    pub fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() {
            match self.state {
                State::Off => {
                    out.extend_from_slice(input);
                    return;
                }
                State::Preface(seen) => {
                    let n = input.len().min(PREFACE.len() - seen);
                    out.extend_from_slice(&input[..n]);
                    if input[..n] != PREFACE[seen..seen + n] {
                        self.state = State::Off;
                    } else if seen + n == PREFACE.len() {
                        self.state = State::Header;
                    } else {
                        self.state = State::Preface(seen + n);
                    }
                    input = &input[n..];
                }
                State::Skip(left) => {
                    let n = input.len().min(left);
                    out.extend_from_slice(&input[..n]);
                    self.state = if n == left {
                        State::Header
                    } else {
                        State::Skip(left - n)
                    };
                    input = &input[n..];
                }
                State::Header => {
                    let n = input.len().min(HEADER_LEN - self.header.len());
                    self.header.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    if self.header.len() == HEADER_LEN {
                        self.start_frame(out);
                    }
                }
                State::Payload(len) => {
                    let n = input.len().min(len - self.payload.len());
                    self.payload.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    if self.payload.len() == len {
                        self.state = State::Header;
                        self.end_frame(out);
                    }
                }
            }
        }
    }

    /// The client closed its side: whatever is held goes to the server as it was sent.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.stop(out);
    }

    /// Stops rewriting: forwards what is held (a pending block's frames, a partial frame) as
    /// the client sent it, and passes every later byte through.
    fn stop(&mut self, out: &mut Vec<u8>) {
        if let Some(pending) = self.pending.take() {
            out.extend_from_slice(&pending.original);
        }
        out.append(&mut self.header);
        out.append(&mut self.payload);
        self.state = State::Off;
    }

    /// A frame header is complete: decide how to read its payload.
    fn start_frame(&mut self, out: &mut Vec<u8>) {
        let h = &self.header;
        let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
        let kind = h[3];
        if kind != HEADERS && kind != CONTINUATION {
            if self.pending.is_some() {
                // Only CONTINUATION may follow a HEADERS without END_HEADERS (RFC 9113 §6.10).
                return self.stop(out);
            }
            out.append(&mut self.header);
            self.state = if len == 0 {
                State::Header
            } else {
                State::Skip(len)
            };
            return;
        }
        let held = self.pending.as_ref().map_or(0, |p| p.original.len());
        if len.saturating_add(held) > MAX_BLOCK {
            return self.stop(out);
        }
        self.payload.clear();
        self.state = State::Payload(len);
        if len == 0 {
            self.state = State::Header;
            self.end_frame(out);
        }
    }

    /// A HEADERS or CONTINUATION frame is complete (header in `header`, payload in `payload`).
    fn end_frame(&mut self, out: &mut Vec<u8>) {
        let kind = self.header[3];
        let flags = self.header[4];
        let stream = u32::from_be_bytes([
            self.header[5] & 0x7f,
            self.header[6],
            self.header[7],
            self.header[8],
        ]);
        let mut pending = match (kind, self.pending.take()) {
            (HEADERS, None) => {
                let Some((priority, fragment)) = headers_fragment(flags, &self.payload) else {
                    return self.stop(out);
                };
                Pending {
                    stream,
                    original: Vec::new(),
                    flags: flags & !(END_HEADERS | PADDED),
                    priority,
                    fragments: fragment.to_vec(),
                }
            }
            (CONTINUATION, Some(mut pending)) if pending.stream == stream => {
                pending.fragments.extend_from_slice(&self.payload);
                pending
            }
            (_, pending) => {
                self.pending = pending;
                return self.stop(out);
            }
        };
        pending.original.append(&mut self.header);
        pending.original.append(&mut self.payload);
        if flags & END_HEADERS == 0 {
            self.pending = Some(pending);
            return;
        }
        match self.block.rewrite(&pending.fragments) {
            Ok(None) => out.extend_from_slice(&pending.original),
            Ok(Some(block)) => write_headers(out, &pending, &block),
            Err(error) => {
                tracing::debug!(%error, "HTTP/2 header block not understood; passing the connection through");
                self.pending = Some(pending);
                self.stop(out);
            }
        }
    }
}

/// The priority fields and header block fragment of a HEADERS payload (RFC 9113 §6.2), or `None`
/// when its padding or priority does not fit in it.
fn headers_fragment(flags: u8, payload: &[u8]) -> Option<(Option<[u8; 5]>, &[u8])> {
    let mut rest = payload;
    let mut pad = 0;
    if flags & PADDED != 0 {
        let (&len, tail) = rest.split_first()?;
        pad = usize::from(len);
        rest = tail;
    }
    let mut priority = None;
    if flags & PRIORITY != 0 {
        let (fields, tail) = rest.split_at_checked(5)?;
        priority = Some(<[u8; 5]>::try_from(fields).ok()?);
        rest = tail;
    }
    let end = rest.len().checked_sub(pad)?;
    Some((priority, &rest[..end]))
}

/// Writes `block` as a HEADERS frame and as many CONTINUATION frames as it needs, with the
/// pending block's stream, flags and priority; padding is dropped.
fn write_headers(out: &mut Vec<u8>, pending: &Pending, block: &[u8]) {
    let priority_len = pending.priority.map_or(0, |_| 5);
    let first_len = block.len().min(MAX_FRAME - priority_len);
    let (first, mut rest) = block.split_at(first_len);
    let mut flags = pending.flags;
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    frame_header(
        out,
        first.len() + priority_len,
        HEADERS,
        flags,
        pending.stream,
    );
    if let Some(priority) = pending.priority {
        out.extend_from_slice(&priority);
    }
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME));
        rest = tail;
        let flags = if rest.is_empty() { END_HEADERS } else { 0 };
        frame_header(out, chunk.len(), CONTINUATION, flags, pending.stream);
        out.extend_from_slice(chunk);
    }
}

fn frame_header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    let len = u32::try_from(len).expect("frames written here are at most MAX_FRAME long");
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
}

#[cfg(test)]
mod tests;
