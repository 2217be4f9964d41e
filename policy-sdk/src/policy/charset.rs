//! Named character sets, for conditions on the characters of tool and
//! prompt names, resource URIs and string arguments.
//!
//! A look-alike or an invisible character (a Cyrillic `а`, a zero-width
//! space, a right-to-left override) makes a name that a person reads as
//! another, and that a server may normalise into another. A charset
//! condition lets a policy refuse such values outright instead of listing
//! every spelling.

/// A named set of characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charset {
    /// U+0020 to U+007E: letters, digits, punctuation and the space.
    PrintableAscii,
    /// U+0021 to U+007E: printable ASCII without the space.
    AsciiGraphic,
    /// The characters MCP allows in tool names (2025-11-25):
    /// `A-Z a-z 0-9 _ - .`.
    ToolName,
}

/// The names a policy may use, for messages.
pub(crate) const CHARSET_NAMES: &str = "`printable_ascii`, `ascii_graphic` and `tool_name`";

impl Charset {
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name {
            "printable_ascii" => Some(Self::PrintableAscii),
            "ascii_graphic" => Some(Self::AsciiGraphic),
            "tool_name" => Some(Self::ToolName),
            _ => None,
        }
    }

    pub(crate) fn contains(self, c: char) -> bool {
        match self {
            Self::PrintableAscii => (' '..='~').contains(&c),
            Self::AsciiGraphic => ('!'..='~').contains(&c),
            Self::ToolName => c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'),
        }
    }
}

/// A compiled charset condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CharsetTest {
    pub charset: Charset,
    /// `true` (`only`): every character is in the set. `false`
    /// (`some_outside`): at least one is not.
    pub only: bool,
}

impl CharsetTest {
    pub(crate) fn holds(self, text: &str) -> bool {
        text.chars().all(|c| self.charset.contains(c)) == self.only
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_ascii_is_space_to_tilde() {
        let set = Charset::PrintableAscii;
        assert!("read file ~/a.txt".chars().all(|c| set.contains(c)));
        for c in [
            '\t', '\n', '\u{7f}', '\u{a0}', '\u{200b}', '\u{430}', '\u{202e}',
        ] {
            assert!(!set.contains(c), "{c:?}");
        }
    }

    #[test]
    fn ascii_graphic_has_no_space() {
        assert!(Charset::AsciiGraphic.contains('!'));
        assert!(!Charset::AsciiGraphic.contains(' '));
    }

    #[test]
    fn tool_name_is_the_mcp_tool_name_alphabet() {
        let set = Charset::ToolName;
        assert!("Get_user-v2.1".chars().all(|c| set.contains(c)));
        for c in [' ', '/', ':', '*', '\u{430}'] {
            assert!(!set.contains(c), "{c:?}");
        }
    }

    #[test]
    fn only_and_some_outside_are_opposites() {
        let only = CharsetTest {
            charset: Charset::PrintableAscii,
            only: true,
        };
        let outside = CharsetTest {
            charset: Charset::PrintableAscii,
            only: false,
        };
        assert!(only.holds("deploy") && !outside.holds("deploy"));
        assert!(!only.holds("dep\u{200b}loy") && outside.holds("dep\u{200b}loy"));
        assert!(only.holds("") && !outside.holds(""));
    }

    #[test]
    fn unknown_names_are_refused() {
        assert_eq!(
            Charset::parse("printable_ascii"),
            Some(Charset::PrintableAscii)
        );
        assert_eq!(Charset::parse("Printable_ASCII"), None);
        assert_eq!(Charset::parse("utf8"), None);
    }
}
