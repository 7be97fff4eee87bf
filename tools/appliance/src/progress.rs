//! Progress bars for long work (recovery, replay, long loads, benchmarks), drawn on stderr only when it is a
//! terminal: redirected to a file or a pipe (CI, scripts, `2>log`), they draw nothing and print nothing.

use std::time::Duration;

pub use indicatif::ProgressBar;
use indicatif::{ProgressDrawTarget, ProgressStyle};

/// Whether bars are drawn: stderr is a terminal.
pub fn drawn() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}

fn target() -> ProgressDrawTarget {
    if drawn() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// A bar of `len` units of `unit` (e.g. "msgs", "records"), labelled `what`.
pub fn bar(len: u64, what: &str, unit: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(len), target());
    let template = format!("{{msg}} [{{bar:32}}] {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, eta {{eta}})");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}

/// A spinner for work of unknown length, ticking on its own (a thread redraws it ten times a second while drawn).
pub fn spinner(what: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(None, target());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        pb.set_style(style);
    }
    pb.set_message(what.to_string());
    if drawn() {
        pb.enable_steady_tick(Duration::from_millis(100));
    }
    pb
}

#[cfg(test)]
mod tests {
    #[test]
    fn bars_are_hidden_when_stderr_is_not_a_terminal() {
        // Under the test harness stderr is captured (a pipe), never a terminal.
        if super::drawn() {
            println!("skipped: stderr is a terminal here");
            return;
        }
        let pb = super::bar(10, "work", "items");
        pb.inc(3);
        assert!(pb.is_hidden());
        assert_eq!(pb.position(), 3, "a hidden bar still counts");
        assert!(super::spinner("waiting").is_hidden());
    }
}
