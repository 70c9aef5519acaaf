//! File contents: literal bytes, or a deterministic stream of a given size.
//!
//! Generated content imitates what images hold: most 4 KiB blocks are text-like (words of a small
//! vocabulary with code-ish punctuation), the rest are random (binaries, compressed assets). The
//! proportions are chosen so gzip -6 shrinks it about 2.6x, like typical distribution layers,
//! instead of the 1000x of zeros or the 1x of pure noise.

use std::io::{self, Read};

use super::rng::Rng;

/// Bytes of a generated stream decided at once: text or random.
const BLOCK: usize = 4096;
/// Percentage of blocks that are text-like; the rest are random bytes.
const TEXT_PERCENT: u64 = 85;
/// Percentage of text lines that repeat an earlier line of their block.
const REPEAT_PERCENT: u64 = 50;

/// What a regular file holds.
#[derive(Clone, PartialEq, Eq)]
pub enum Content {
    /// These exact bytes.
    Bytes(Vec<u8>),
    /// `size` bytes generated from `seed`, streamed rather than stored.
    Generated {
        /// Seed of the stream; the same seed and size give the same bytes.
        seed: u64,
        /// Length in bytes.
        size: u64,
    },
}

impl Content {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Content::Bytes(bytes) => bytes.len() as u64,
            Content::Generated { size, .. } => *size,
        }
    }

    /// True for empty content.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A reader over the content, generating it on the fly when needed.
    pub fn reader(&self) -> ContentReader<'_> {
        match self {
            Content::Bytes(bytes) => ContentReader(Source::Bytes(bytes.as_slice())),
            Content::Generated { seed, size } => {
                ContentReader(Source::Generated(Generator::new(*seed, *size)))
            }
        }
    }
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Content::Bytes(bytes) if bytes.len() <= 64 => {
                write!(f, "Bytes({:?})", String::from_utf8_lossy(bytes))
            }
            Content::Bytes(bytes) => write!(f, "Bytes(<{} bytes>)", bytes.len()),
            Content::Generated { seed, size } => {
                write!(f, "Generated {{ seed: {seed}, size: {size} }}")
            }
        }
    }
}

impl From<&[u8]> for Content {
    fn from(bytes: &[u8]) -> Self {
        Content::Bytes(bytes.to_vec())
    }
}

impl From<&str> for Content {
    fn from(text: &str) -> Self {
        Content::Bytes(text.as_bytes().to_vec())
    }
}

impl From<Vec<u8>> for Content {
    fn from(bytes: Vec<u8>) -> Self {
        Content::Bytes(bytes)
    }
}

/// Reads a [`Content`]: a slice, or a generator producing one block at a time.
#[derive(Debug)]
pub struct ContentReader<'a>(Source<'a>);

#[derive(Debug)]
enum Source<'a> {
    /// Literal bytes still to read.
    Bytes(&'a [u8]),
    /// A generated stream.
    Generated(Generator),
}

impl Read for ContentReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.0 {
            Source::Bytes(bytes) => bytes.read(buf),
            Source::Generated(generator) => Ok(generator.fill(buf)),
        }
    }
}

/// The generated stream behind [`Content::Generated`].
#[derive(Debug)]
struct Generator {
    rng: Rng,
    remaining: u64,
    block: Box<[u8; BLOCK]>,
    /// Read position in `block`; `BLOCK` when the block is used up.
    pos: usize,
}

impl Generator {
    fn new(seed: u64, size: u64) -> Self {
        Self {
            rng: Rng::new(seed),
            remaining: size,
            block: Box::new([0; BLOCK]),
            pos: BLOCK,
        }
    }

    /// Copies up to `buf.len()` bytes of the stream into `buf`; 0 at the end.
    fn fill(&mut self, buf: &mut [u8]) -> usize {
        let mut written = 0;
        while written < buf.len() && self.remaining > 0 {
            if self.pos == BLOCK {
                self.next_block();
            }
            let available = (BLOCK - self.pos) as u64;
            let n = (buf.len() - written).min(available.min(self.remaining) as usize);
            buf[written..written + n].copy_from_slice(&self.block[self.pos..self.pos + n]);
            self.pos += n;
            written += n;
            self.remaining -= n as u64;
        }
        written
    }

    fn next_block(&mut self) {
        if self.rng.chance(TEXT_PERCENT) {
            text_block(&mut self.rng, &mut self.block);
        } else {
            for chunk in self.block.chunks_exact_mut(8) {
                chunk.copy_from_slice(&self.rng.next_u64().to_le_bytes());
            }
        }
        self.pos = 0;
    }
}

/// Fills `block` with lines of words. A share of lines repeat an earlier line of the block, as
/// source code and configuration repeat themselves; that is what lets gzip find long matches.
fn text_block(rng: &mut Rng, block: &mut [u8; BLOCK]) {
    // (start, end) of the lines written so far; a ring, so long blocks reuse recent lines.
    let mut lines = [(0u16, 0u16); 64];
    let mut count = 0usize;
    let mut at = 0;
    while at < BLOCK {
        let start = at;
        if count > 0 && rng.chance(REPEAT_PERCENT) {
            let (from, to) = lines[rng.range(0, count.min(lines.len()) as u64 - 1) as usize];
            let n = usize::from(to - from).min(BLOCK - at);
            block.copy_within(usize::from(from)..usize::from(from) + n, at);
            at += n;
        } else {
            let words = rng.range(3, 10);
            let mut bits = rng.next_u64();
            for word in 0..words {
                if word % 4 == 0 && word > 0 {
                    bits = rng.next_u64();
                }
                let text = WORDS[(bits & 0xff) as usize].as_bytes();
                let separator = if word + 1 == words {
                    b"\n".as_slice()
                } else {
                    SEPARATORS[((bits >> 8) & 0xf) as usize].as_bytes()
                };
                bits >>= 16;
                for piece in [text, separator] {
                    let n = piece.len().min(BLOCK - at);
                    block[at..at + n].copy_from_slice(&piece[..n]);
                    at += n;
                }
            }
        }
        // Both fit in u16: BLOCK is 4096.
        lines[count % lines.len()] = (start as u16, at as u16);
        count += 1;
    }
}

const SEPARATORS: [&str; 16] = [
    " ", " ", " ", " ", " ", " ", " ", "  ", ", ", "(", ") ", " = ", "; ", ".", ": ", "_",
];

/// 256 words of the kind found in source, config files and documentation.
#[rustfmt::skip]
const WORDS: [&str; 256] = [
    "the", "of", "and", "to", "in", "is", "for", "that", "with", "on", "as", "by", "be", "this",
    "are", "from", "or", "an", "at", "it", "not", "if", "else", "return", "fn", "let", "mut",
    "const", "static", "struct", "enum", "impl", "pub", "use", "mod", "self", "Self", "match",
    "while", "loop", "break", "continue", "true", "false", "None", "Some", "Ok", "Err", "int",
    "char", "void", "unsigned", "long", "double", "float", "include", "define", "ifdef", "endif",
    "import", "package", "class", "def", "lambda", "yield", "async", "await", "function", "var",
    "new", "delete", "this", "null", "undefined", "string", "number", "object", "array", "value",
    "key", "name", "type", "size", "length", "count", "index", "offset", "buffer", "data", "file",
    "path", "dir", "error", "result", "config", "option", "options", "default", "version", "image",
    "layer", "content", "digest", "manifest", "registry", "container", "node", "pod", "service",
    "server", "client", "request", "response", "header", "body", "status", "code", "message", "log",
    "debug", "info", "warn", "trace", "time", "timeout", "retry", "limit", "max", "min", "user",
    "group", "mode", "owner", "permission", "read", "write", "open", "close", "flush", "sync",
    "lock", "unlock", "thread", "process", "signal", "memory", "cache", "hash", "map", "list",
    "vec", "set", "queue", "stack", "tree", "graph", "node_id", "parent", "child", "root", "usr",
    "lib", "bin", "share", "etc", "var", "opt", "local", "include_dir", "doc", "man", "locale",
    "python3", "perl", "ruby", "java", "rust", "golang", "node_modules", "site", "packages", "dist",
    "build", "target", "release", "test", "tests", "example", "examples", "license", "copyright",
    "author", "Apache", "MIT", "GPL", "software", "without", "warranty", "any", "all", "may",
    "must", "should", "can", "will", "when", "which", "where", "there", "their", "has", "have",
    "had", "was", "were", "been", "being", "do", "does", "done", "one", "two", "three", "first",
    "last", "next", "previous", "begin", "end", "start", "stop", "init", "main", "args", "argv",
    "argc", "env", "http", "https", "tcp", "udp", "socket", "port", "address", "host", "url", "uri",
    "json", "yaml", "toml", "xml", "html", "css", "utf8", "ascii", "bytes",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(content: &Content, chunk: usize) -> Vec<u8> {
        let mut reader = content.reader();
        let mut out = Vec::new();
        let mut buf = vec![0; chunk];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    #[test]
    fn generated_content_has_its_size_and_ignores_read_sizes() {
        let content = Content::Generated {
            seed: 3,
            size: 10_000,
        };
        let a = read_all(&content, 7);
        let b = read_all(&content, 65536);
        assert_eq!(a.len(), 10_000);
        assert_eq!(a, b);
    }

    #[test]
    fn different_seeds_differ() {
        let a = read_all(
            &Content::Generated {
                seed: 1,
                size: 4096,
            },
            4096,
        );
        let b = read_all(
            &Content::Generated {
                seed: 2,
                size: 4096,
            },
            4096,
        );
        assert_ne!(a, b);
    }

    #[test]
    fn generated_content_compresses_like_real_layers() {
        use std::io::Write;
        let data = read_all(
            &Content::Generated {
                seed: 9,
                size: 4 << 20,
            },
            65536,
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        gz.write_all(&data).unwrap();
        let compressed = gz.finish().unwrap();
        let ratio = data.len() as f64 / compressed.len() as f64;
        assert!((2.0..=3.2).contains(&ratio), "gzip ratio {ratio:.2}");
    }
}
