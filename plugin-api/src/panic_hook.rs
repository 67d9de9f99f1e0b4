//! The guest's panic hook. Plugins build with `panic = "abort"`, so a panic ends the call with a
//! bare `unreachable` trap, and the message would be lost; this hook sends it first through the
//! host's `log` import at error level. The host keeps the last error line of a call and, when the
//! call traps, puts it in the error it reports: `hostile: trap in chunk: panicked at
//! hostile/src/lib.rs:81:24: boom`. No import beyond the contract's `log`.

use std::fmt::Write as _;
use std::panic::{Location, PanicHookInfo};
use std::sync::Once;

use crate::Level;

/// Longest panic message sent to the host, in bytes (the host keeps at most 1024 characters of a
/// log line anyway): a panic with a huge message costs one bounded copy, not a huge one.
pub(crate) const MAX_PANIC_MESSAGE: usize = 1024;

/// Installs the hook, once per instance: every export goes through here before the plugin's
/// code runs. A plugin that sets its own hook later (`std::panic::set_hook`) replaces it.
pub(crate) fn install() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| std::panic::set_hook(Box::new(report)));
}

fn report(info: &PanicHookInfo<'_>) {
    crate::log(
        Level::Error,
        &message(info.payload_as_str(), info.location()),
    );
}

/// `panicked at FILE:LINE:COLUMN: MESSAGE`, at most [`MAX_PANIC_MESSAGE`] bytes (cut on a
/// character boundary, `…` marking the cut).
pub(crate) fn message(payload: Option<&str>, location: Option<&Location<'_>>) -> String {
    let mut text = String::from("panicked");
    if let Some(at) = location {
        // Writing to a String cannot fail.
        let _ = write!(text, " at {}:{}:{}", at.file(), at.line(), at.column());
    }
    text.push_str(": ");
    // A payload that is not text (`std::panic::panic_any`) is shown as std shows it.
    let payload = payload.unwrap_or("Box<dyn Any>");
    let room = MAX_PANIC_MESSAGE.saturating_sub(text.len());
    if payload.len() <= room {
        text.push_str(payload);
    } else {
        let ellipsis = '…'.len_utf8();
        let mut cut = room.saturating_sub(ellipsis);
        while !payload.is_char_boundary(cut) {
            cut -= 1;
        }
        text.push_str(&payload[..cut]);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_place_and_the_message() {
        let here = Location::caller();
        let text = message(Some("boom"), Some(here));
        assert_eq!(
            text,
            format!(
                "panicked at {}:{}:{}: boom",
                here.file(),
                here.line(),
                here.column()
            )
        );
        assert_eq!(message(None, None), "panicked: Box<dyn Any>");
    }

    #[test]
    fn a_huge_message_is_cut_on_a_character_boundary() {
        let huge = "é".repeat(1 << 20);
        let text = message(Some(&huge), None);
        assert!(text.len() <= MAX_PANIC_MESSAGE, "{} bytes", text.len());
        assert!(text.len() > MAX_PANIC_MESSAGE - 8, "{} bytes", text.len());
        assert!(
            text.starts_with("panicked: éé") && text.ends_with("é…"),
            "{text}"
        );
        let fits = "x".repeat(MAX_PANIC_MESSAGE - "panicked: ".len());
        assert_eq!(message(Some(&fits), None).len(), MAX_PANIC_MESSAGE);
    }
}
