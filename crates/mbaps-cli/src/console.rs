//! Where the program's lines go: standard output, unless the tap took it
//! (`--tap -`: standard output carries the capture, and every line the
//! program writes, logs and "listening on" included, goes to standard
//! error instead).

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_TAKEN: AtomicBool = AtomicBool::new(false);

/// Standard output carries the tap's capture from now on.
pub(crate) fn give_stdout_to_tap() {
    STDOUT_TAKEN.store(true, Ordering::Relaxed);
}

/// Whether standard output carries the tap's capture.
pub(crate) fn stdout_taken() -> bool {
    STDOUT_TAKEN.load(Ordering::Relaxed)
}

/// Writes one line, where the program's lines go.
pub(crate) fn line(text: fmt::Arguments<'_>) {
    // A closed output is not worth failing the server for.
    let _ = if stdout_taken() {
        writeln!(std::io::stderr(), "{text}")
    } else {
        writeln!(std::io::stdout(), "{text}")
    };
}

/// `println!`, where the program's lines go (see [`line`](fn@line)).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::console::line(format_args!($($arg)*))
    };
}
pub(crate) use say;
