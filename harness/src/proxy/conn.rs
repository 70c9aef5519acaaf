//! One client connection: requests read one by one, each forwarded on a fresh upstream
//! connection (so every request pays the first-byte latency and any fault independently), the
//! response body paced by the connection's and the link's buckets.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::Shared;
use super::bucket::Bucket;
use super::fault::Fault;
use super::http::{self, Body, Head};
use super::splice;

/// Largest piece moved at once; smaller pieces pace more smoothly, larger ones cost fewer
/// wake-ups (at 30 MB/s, 64 KiB is 2 ms).
const PIECE: usize = 64 * 1024;

/// What to do with the client connection after a response.
enum Next {
    KeepAlive,
    Close,
    Reset,
}

/// Serves `client` until it closes, a response cannot be framed, or a fault ends it.
pub async fn serve(client: TcpStream, shared: Arc<Shared>) {
    let mut own = shared.shaping.per_connection.map(Bucket::new);
    let mut client = BufReader::new(client);
    loop {
        let Ok(Some(request)) = Head::read(&mut client).await else {
            return;
        };
        match exchange(&mut client, request, &shared, &mut own).await {
            Ok(Next::KeepAlive) => {}
            Ok(Next::Close) | Err(_) => return,
            Ok(Next::Reset) => {
                let _ = client.get_ref().set_zero_linger();
                return;
            }
        }
    }
}

async fn exchange(
    client: &mut BufReader<TcpStream>,
    mut request: Head,
    shared: &Shared,
    own: &mut Option<Bucket>,
) -> std::io::Result<Next> {
    shared.stats.requests.fetch_add(1, Ordering::Relaxed);
    if request.get("range").is_some() {
        shared.stats.range_requests.fetch_add(1, Ordering::Relaxed);
    }
    let fault = shared.faults().take(request.method(), request.target());
    if fault.is_some() {
        shared.stats.faults.fetch_add(1, Ordering::Relaxed);
    }
    let request_body = request.content_length().unwrap_or(0);
    let client_closes = request
        .get("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    match &fault {
        Some(Fault::Status(code)) => {
            shared
                .stats
                .answered(request.method(), request.target(), *code);
            skip(client, request_body).await?;
            return answer(client, http::canned(*code, "injected fault", None)).await;
        }
        Some(Fault::TooManyRequests { retry_after }) => {
            shared
                .stats
                .answered(request.method(), request.target(), 429);
            skip(client, request_body).await?;
            let canned = http::canned(429, "Too Many Requests", Some(*retry_after));
            return answer(client, canned).await;
        }
        Some(Fault::IgnoreRange) => request.remove("range"),
        _ => {}
    }
    if !shared.shaping.first_byte.is_zero() {
        tokio::time::sleep(shared.shaping.first_byte).await;
    }

    let upstream = TcpStream::connect(shared.upstream).await?;
    upstream.set_nodelay(true)?;
    let mut upstream = BufReader::new(upstream);
    request.set("Connection", "close");
    upstream.get_mut().write_all(&request.to_bytes()).await?;
    copy_exact(client, upstream.get_mut(), request_body).await?;

    let Some(mut response) = Head::read(&mut upstream).await? else {
        return Ok(Next::Close);
    };
    shared
        .stats
        .answered(request.method(), request.target(), response.status());
    let body = Body::of(request.method(), &response);
    response.remove("connection");
    let keep_alive = !client_closes && body != Body::UntilClose { framed: false };
    if !keep_alive {
        response.set("Connection", "close");
    }
    client.get_mut().write_all(&response.to_bytes()).await?;

    let (limit, next) = match fault {
        Some(Fault::Reset { after_bytes }) => (Some(after_bytes), Next::Reset),
        Some(Fault::Stall {
            after_bytes,
            duration,
        }) => {
            shaped_copy(
                &mut upstream,
                client.get_mut(),
                body,
                Some(after_bytes),
                shared,
                own,
            )
            .await?;
            client.get_mut().flush().await?;
            tokio::time::sleep(duration).await;
            return Ok(Next::Close);
        }
        _ => (
            None,
            if keep_alive {
                Next::KeepAlive
            } else {
                Next::Close
            },
        ),
    };
    shaped_copy(&mut upstream, client.get_mut(), body, limit, shared, own).await?;
    client.get_mut().flush().await?;
    Ok(next)
}

/// Sends a made-up response; the connection stays open.
async fn answer(client: &mut BufReader<TcpStream>, bytes: Vec<u8>) -> std::io::Result<Next> {
    client.get_mut().write_all(&bytes).await?;
    Ok(Next::KeepAlive)
}

/// Copies the response body, at most `limit` bytes of it, through the buckets: what the
/// upstream reader has buffered is written from memory, the rest is spliced socket to socket.
async fn shaped_copy(
    from: &mut BufReader<TcpStream>,
    to: &mut TcpStream,
    body: Body,
    limit: Option<u64>,
    shared: &Shared,
    own: &mut Option<Bucket>,
) -> std::io::Result<()> {
    let mut left = match body {
        Body::Length(n) => n,
        Body::UntilClose { .. } => u64::MAX,
    };
    if let Some(limit) = limit {
        left = left.min(limit);
    }
    let buffered = from.buffer();
    let n = buffered
        .len()
        .min(usize::try_from(left).unwrap_or(usize::MAX));
    if n > 0 {
        pace(n, shared, own).await;
        to.write_all(&buffered[..n]).await?;
        std::pin::Pin::new(&mut *from).consume(n);
        shared.stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
        left -= n as u64;
    }
    let pipe = splice::Pipe::new()?;
    while left > 0 {
        let want = PIECE.min(usize::try_from(left).unwrap_or(PIECE));
        let n = pipe.fill(from.get_ref(), want).await?;
        if n == 0 {
            if matches!(body, Body::Length(_)) {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            break;
        }
        pace(n, shared, own).await;
        pipe.drain(to, n).await?;
        shared.stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
        left -= n as u64;
    }
    Ok(())
}

/// Draws `n` bytes from the connection's and the link's buckets and waits what they say.
async fn pace(n: usize, shared: &Shared, own: &mut Option<Bucket>) {
    let mut wait = own.as_mut().map_or(Duration::ZERO, |b| b.draw(n));
    if let Some(link) = &shared.link {
        let mut link = link.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        wait = wait.max(link.draw(n));
    }
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
}

/// Forwards exactly `n` request body bytes.
async fn copy_exact<R, W>(from: &mut R, to: &mut W, n: u64) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if n > 0 {
        let copied = tokio::io::copy(&mut from.take(n), to).await?;
        if copied < n {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

/// Reads and drops `n` request body bytes.
async fn skip<R: AsyncRead + Unpin>(from: &mut R, n: u64) -> std::io::Result<()> {
    copy_exact(from, &mut tokio::io::sink(), n).await
}
