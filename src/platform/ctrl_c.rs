//! Shutdown for servers where only Ctrl+C can be caught (Windows and the
//! systems portctl does not support fully), and no job control.

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

/// No job control here: nothing ever arrives.
pub struct JobSignals;

impl JobSignals {
    pub fn install() -> Self {
        JobSignals
    }

    pub async fn next(&mut self) -> crate::platform::JobSignal {
        std::future::pending().await
    }
}

/// No job control: a suspend does nothing.
pub fn stop_self() {}

/// The width of the console stdout writes to, where it is one.
pub fn stdout_width() -> Option<u16> {
    ratatui::crossterm::terminal::window_size()
        .ok()
        .map(|size| size.columns)
}
