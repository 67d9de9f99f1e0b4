//! Stopping a transfer on purpose (Ctrl-C, a daemon shutting down), so the peer hears of it at
//! once instead of noticing, seconds later, that the connection dropped.
//!
//! Once connected, the side that stops sends the peer an `error` of kind
//! [`crate::transfer::frames::CANCELLED_KIND`] over
//! the data channel (inside DTLS, so sealed like everything else on it) and waits briefly for it to
//! leave; the peer ends with [`crate::transfer::TransferError::Cancelled`]. What was received so far
//! stays in its part files, so running the same transfer again resumes it.

use std::sync::Arc;

use tokio::sync::watch;

/// A switch shared between whoever may stop a transfer and the transfer itself. Clones are the
/// same switch; once thrown it stays thrown.
#[derive(Debug, Clone)]
pub struct Cancel {
    thrown: Arc<watch::Sender<bool>>,
}

impl Default for Cancel {
    fn default() -> Self {
        Self::new()
    }
}

impl Cancel {
    /// A switch not thrown yet.
    pub fn new() -> Self {
        Self {
            thrown: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Asks the transfer to stop: it tells the peer and ends with
    /// [`super::OneshotError::Cancelled`].
    pub fn cancel(&self) {
        self.thrown.send_replace(true);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        *self.thrown.borrow()
    }

    /// Resolves once [`Cancel::cancel`] is called (at once if it was).
    pub async fn cancelled(&self) {
        let mut seen = self.thrown.subscribe();
        // The sender lives in `self`, so the channel cannot close while this waits.
        let _ = seen.wait_for(|thrown| *thrown).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_thrown_switch_resolves_every_waiter_and_stays_thrown() {
        let cancel = Cancel::new();
        assert!(!cancel.is_cancelled());
        let waiter = tokio::spawn({
            let cancel = cancel.clone();
            async move { cancel.cancelled().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        cancel.clone().cancel();
        waiter.await.unwrap();
        assert!(cancel.is_cancelled());
        // A late waiter does not wait.
        tokio::time::timeout(std::time::Duration::from_secs(1), cancel.cancelled())
            .await
            .unwrap();
    }
}
