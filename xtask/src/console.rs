//! Output of xtask and of the processes it runs: one line per log line,
//! prefixed by the name of its source, colored when stdout is a terminal.

use std::io::{IsTerminal, Write};

/// Width of the name column: the longest service name, so the `|` line up.
pub const NAME_WIDTH: usize = 17;

/// ANSI colors used for the name column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    Cyan,
    Green,
    Yellow,
    Magenta,
    Blue,
    Red,
    Grey,
    Bold,
}

impl Color {
    /// Colors given to the services in start order; anvil and xtask have their own.
    pub const PALETTE: [Color; 5] = [
        Color::Cyan,
        Color::Green,
        Color::Yellow,
        Color::Magenta,
        Color::Blue,
    ];

    fn code(self) -> &'static str {
        match self {
            Color::Cyan => "36",
            Color::Green => "32",
            Color::Yellow => "33",
            Color::Magenta => "35",
            Color::Blue => "34",
            Color::Red => "31",
            Color::Grey => "90",
            Color::Bold => "1",
        }
    }
}

/// Where lines go. Copyable so every log-reader thread holds its own.
#[derive(Debug, Clone, Copy)]
pub struct Console {
    color: bool,
}

impl Console {
    /// Colors only when stdout is a terminal and the user did not opt out.
    pub fn detect(no_color: bool) -> Self {
        Self {
            color: !no_color && std::io::stdout().is_terminal(),
        }
    }

    /// Whether lines are colored (children are asked to color theirs only then).
    pub fn colored(&self) -> bool {
        self.color
    }

    /// Prints `name | text` on stdout.
    pub fn line(&self, name: &str, color: Color, text: &str) {
        let line = self.format(name, color, text);
        // Locking makes each line atomic between the reader threads; a closed
        // stdout (`| head`) is not worth failing the stack for.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// A progress line from xtask itself.
    pub fn info(&self, text: &str) {
        self.line("xtask", Color::Bold, text);
    }

    /// An error line from xtask itself, on stderr.
    pub fn error(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        for line in text.lines() {
            let _ = writeln!(err, "{}", self.format("xtask", Color::Red, line));
        }
    }

    fn format(&self, name: &str, color: Color, text: &str) -> String {
        if self.color {
            format!("\x1b[{}m{name:<NAME_WIDTH$} |\x1b[0m {text}", color.code())
        } else {
            format!("{name:<NAME_WIDTH$} | {text}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_are_aligned_on_the_longest_service_name() {
        let console = Console { color: false };
        assert_eq!(
            console.format("anvil", Color::Grey, "listening"),
            "anvil             | listening"
        );
        assert_eq!(
            console.format("redemption-payout", Color::Blue, "up"),
            "redemption-payout | up"
        );
    }

    #[test]
    fn colored_lines_reset_after_the_name() {
        let console = Console { color: true };
        assert_eq!(
            console.format("read-api", Color::Green, "x"),
            "\x1b[32mread-api          |\x1b[0m x"
        );
    }
}
