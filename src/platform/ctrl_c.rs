//! Shutdown for servers where only Ctrl+C can be caught (Windows and the
//! systems portctl does not support fully).

/// Ctrl+C, caught from the moment this is created.
pub struct Shutdown;

impl Shutdown {
    pub fn install() -> Self {
        Shutdown
    }

    pub async fn requested(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
