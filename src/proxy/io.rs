//! The streams under the upstream clients, with every TLS session boxed.
//!
//! hyper-rustls's `MaybeHttpsStream` holds its TLS session inline, so a
//! plain connection carries its ≈ 1 KB too; the connector under it
//! ([`super::Connector`]) yields one for `https://` proxies. Over an
//! HTTP/1.1 upstream there is one connection per stream in flight, and two
//! such inline sessions made ≈ 2 KB of every silent stream's memory. Here a
//! plain connection is [`Either::Plain`], a TLS one [`Either::Tls`] on the
//! heap: [`Io`] under the TLS to Google, [`Stream`] over it ([`Tls`], the
//! HTTPS connector every upstream client is built on).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::BoxError;

/// A plain stream, or a TLS session over one (boxed).
pub enum Either<P, T> {
    /// No TLS at this layer.
    Plain(P),
    /// TLS at this layer.
    Tls(Box<T>),
}

/// What [`super::Connector`] yields: TCP (straight, or a tunnel through an
/// `http://` or SOCKS5 proxy), or the TLS session to an `https://` proxy
/// carrying the tunnel.
pub type Io = Either<TokioIo<TcpStream>, MaybeHttpsStream<TokioIo<TcpStream>>>;

/// What [`Tls`] yields: [`Io`], or the TLS session to Google over it.
pub type Stream = Either<Io, MaybeHttpsStream<Io>>;

/// Both variants' calls, by `self`'s variant.
macro_rules! each {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            Either::Plain($s) => $e,
            Either::Tls($s) => {
                let $s = $s.as_mut();
                $e
            }
        }
    };
}

impl<P, T> Read for Either<P, T>
where
    P: Read + Unpin,
    T: Read + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_read(cx, buf))
    }
}

impl<P, T> Write for Either<P, T>
where
    P: Write + Unpin,
    T: Write + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self.get_mut(), s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_shutdown(cx))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Either::Plain(s) => s.is_write_vectored(),
            Either::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self.get_mut(), s => Pin::new(s).poll_write_vectored(cx, bufs))
    }
}

impl<P: Connection, T: Connection> Connection for Either<P, T> {
    fn connected(&self) -> Connected {
        match self {
            Either::Plain(s) => s.connected(),
            Either::Tls(s) => s.connected(),
        }
    }
}

impl<S> From<MaybeHttpsStream<S>> for Either<S, MaybeHttpsStream<S>> {
    fn from(s: MaybeHttpsStream<S>) -> Self {
        match s {
            MaybeHttpsStream::Http(p) => Either::Plain(p),
            tls => Either::Tls(Box::new(tls)),
        }
    }
}

/// hyper-rustls's HTTPS connector over [`super::Connector`], yielding
/// [`Stream`]: the connector of every upstream client.
#[derive(Clone)]
pub struct Tls(pub HttpsConnector<super::Connector>);

impl tower_service::Service<Uri> for Tls {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = self.0.call(dst);
        Box::pin(async move { connecting.await.map(Stream::from) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain connection does not carry a TLS session's size, at either
    /// layer.
    #[test]
    fn a_plain_connection_holds_no_tls_session() {
        use std::mem::size_of;
        assert!(size_of::<Io>() <= 64, "{}", size_of::<Io>());
        assert!(size_of::<Stream>() <= 64, "{}", size_of::<Stream>());
        let inline = size_of::<MaybeHttpsStream<MaybeHttpsStream<TokioIo<TcpStream>>>>();
        assert!(
            inline > 2000,
            "{inline}: hyper-rustls no longer inlines TLS; this module can go"
        );
    }
}
