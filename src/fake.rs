//! STUB
use std::sync::Arc;
/// stub
pub struct FakeState;
impl FakeState {
    /** x */
    pub fn new() -> Arc<Self> {
        Arc::new(FakeState)
    }
}
/// stub
pub struct Fake {
    /** x */
    pub addr: std::net::SocketAddr,
    /** x */
    pub state: Arc<FakeState>,
}
impl Fake {
    /** x */
    pub async fn start() -> std::io::Result<Fake> {
        todo!()
    }
    /** x */
    pub fn base_url(&self) -> String {
        todo!()
    }
}
/// stub
pub async fn serve(_l: tokio::net::TcpListener, _s: Arc<FakeState>) {}
