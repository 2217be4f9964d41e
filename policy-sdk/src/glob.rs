//! Glob patterns for tool names, prompt names, subjects, methods and URIs.
//!
//! `*` matches any run of characters except `/`, `**` matches any run
//! including `/`, `?` matches one character except `/`. `\*`, `\?` and `\\`
//! are a literal `*`, `?` and `\` (a resource URI may hold a `?`). Character
//! classes, alternatives and any other escape are refused rather than
//! silently taken literally, so a policy author never believes a pattern
//! means more than it does.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    Star,
    DoubleStar,
    Question,
}

/// A validated glob pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    tokens: Vec<Token>,
    /// The literal text every match starts with (escapes removed), and how
    /// many tokens it takes; with no tail, the one text the pattern
    /// matches.
    prefix: String,
    prefix_tokens: usize,
    tail: Tail,
}

/// What follows the literal prefix. The shapes policies use most (`read_*`,
/// `docs://public/**`) are matched without the automaton: a list of 100
/// tools checked against `read_*` spent an eighth of its cut in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    /// Nothing: the pattern is its prefix.
    Nothing,
    /// One `*`: the rest of the text holds no `/`.
    Star,
    /// One `**`: any rest.
    DoubleStar,
    /// Anything else: the automaton, on the tokens after the prefix.
    General,
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.source)
    }
}

/// Why a pattern is not a valid glob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("pattern is empty")]
    Empty,
    #[error("`{0}` is not supported in patterns (only `*`, `**` and `?`); list the names instead")]
    Unsupported(char),
    #[error("`***` is ambiguous; use `**`")]
    TripleStar,
    #[error("`\\` escapes only `*`, `?` and `\\`; write a literal backslash as `\\\\`")]
    Escape,
}

/// One character of a pattern with its escapes removed, and whether it was
/// escaped (a literal `*`, `?` or `\`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatternChar {
    pub char: char,
    pub escaped: bool,
}

/// Reads `pattern`'s escapes: `\*`, `\?` and `\\` are literal characters; any
/// other backslash is an error.
pub fn unescape(pattern: &str) -> Result<Vec<PatternChar>, GlobError> {
    let mut out = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(e @ ('*' | '?' | '\\')) => out.push(PatternChar {
                    char: e,
                    escaped: true,
                }),
                _ => return Err(GlobError::Escape),
            }
        } else {
            out.push(PatternChar {
                char: c,
                escaped: false,
            });
        }
    }
    Ok(out)
}

/// Writes characters back as a pattern, escaping the ones marked.
pub fn escape(chars: impl IntoIterator<Item = PatternChar>) -> String {
    let mut out = String::new();
    for PatternChar { char, escaped } in chars {
        if escaped {
            out.push('\\');
        }
        out.push(char);
    }
    out
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Self, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        let mut tokens = Vec::new();
        let mut chars = unescape(pattern)?.into_iter().peekable();
        let unescaped_star =
            |c: Option<&PatternChar>| c.is_some_and(|c| c.char == '*' && !c.escaped);
        while let Some(c) = chars.next() {
            let token = match c {
                PatternChar {
                    char,
                    escaped: true,
                } => Token::Literal(char),
                PatternChar { char: '*', .. } if unescaped_star(chars.peek()) => {
                    chars.next();
                    if unescaped_star(chars.peek()) {
                        return Err(GlobError::TripleStar);
                    }
                    Token::DoubleStar
                }
                PatternChar { char: '*', .. } => Token::Star,
                PatternChar { char: '?', .. } => Token::Question,
                PatternChar {
                    char: c @ ('[' | ']' | '{' | '}'),
                    ..
                } => return Err(GlobError::Unsupported(c)),
                PatternChar { char, .. } => Token::Literal(char),
            };
            tokens.push(token);
        }
        let prefix: String = tokens
            .iter()
            .map_while(|t| match t {
                Token::Literal(c) => Some(*c),
                Token::Star | Token::DoubleStar | Token::Question => None,
            })
            .collect();
        let prefix_tokens = prefix.chars().count();
        let tail = match tokens.get(prefix_tokens..) {
            Some([]) => Tail::Nothing,
            Some([Token::Star]) => Tail::Star,
            Some([Token::DoubleStar]) => Tail::DoubleStar,
            _ => Tail::General,
        };
        Ok(Self {
            source: pattern.to_owned(),
            tokens,
            prefix,
            prefix_tokens,
            tail,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The literal text when the pattern has no wildcard: such patterns are
    /// indexed by exact name.
    pub fn literal(&self) -> Option<&str> {
        (self.tail == Tail::Nothing).then_some(self.prefix.as_str())
    }

    /// The literal text every match starts with (escapes removed).
    pub fn literal_prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether `text` matches the whole pattern: the literal prefix
    /// first (each of its tokens takes exactly its own character), then
    /// the tail on the rest. A general tail runs in O(len(text) ×
    /// len(pattern)) time, with no backtracking blow-up.
    pub fn matches(&self, text: &str) -> bool {
        let Some(rest) = text.strip_prefix(self.prefix.as_str()) else {
            return false;
        };
        match self.tail {
            // Most patterns in real policies are plain names.
            Tail::Nothing => rest.is_empty(),
            Tail::Star => !rest.contains('/'),
            Tail::DoubleStar => true,
            Tail::General => automaton_matches(
                self.tokens.get(self.prefix_tokens..).unwrap_or_default(),
                rest,
            ),
        }
    }
}

/// Whether `text` matches `tokens` whole, by the automaton: the set of
/// token prefixes that match the text read so far, one step per character.
#[expect(
    clippy::indexing_slicing,
    reason = "indices are bounded by the lengths of the vectors they index"
)]
fn automaton_matches(tokens: &[Token], text: &str) -> bool {
    let n = tokens.len();
    // prev[j]: the first j tokens match the text consumed so far.
    let mut prev = vec![false; n + 1];
    let mut cur = vec![false; n + 1];
    prev[0] = true;
    for j in 1..=n {
        prev[j] = prev[j - 1] && matches!(tokens[j - 1], Token::Star | Token::DoubleStar);
    }
    for c in text.chars() {
        cur[0] = false;
        for j in 1..=n {
            cur[j] = match tokens[j - 1] {
                Token::Literal(l) => prev[j - 1] && l == c,
                Token::Question => prev[j - 1] && c != '/',
                Token::Star => cur[j - 1] || (prev[j] && c != '/'),
                Token::DoubleStar => cur[j - 1] || prev[j],
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[n]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        Glob::new(p).unwrap().matches(t)
    }

    #[test]
    fn star_stays_within_a_segment() {
        assert!(m("delete_*", "delete_repo"));
        assert!(m("delete_*", "delete_"));
        assert!(!m("delete_*", "undelete_repo"));
        assert!(!m("docs://public/*", "docs://public/a/b"));
        assert!(m("docs://public/**", "docs://public/a/b"));
        assert!(m("*", ""));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "a/c"));
        assert!(!m("abc", "abcd"));
    }

    /// Every pattern of up to four tokens over `a`, `/`, `*`, `**`, `?`
    /// and an escaped `*`, against every text of up to five characters
    /// over `a`, `b`, `/`, `*`: the prefix and tail shortcuts decide as the
    /// automaton over the whole pattern does.
    #[test]
    fn shortcuts_agree_with_the_automaton() {
        let pieces = ["a", "/", "*", "**", "?", "\\*"];
        let mut patterns = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = patterns
                .iter()
                .flat_map(|p| pieces.iter().map(move |piece| format!("{p}{piece}")))
                .collect();
            patterns.extend(longer);
        }
        patterns.sort();
        patterns.dedup();
        let mut texts = vec![String::new()];
        for _ in 0..5 {
            let longer: Vec<String> = texts
                .iter()
                .flat_map(|t| ["a", "b", "/", "*"].map(|c| format!("{t}{c}")))
                .collect();
            texts.extend(longer);
        }
        texts.sort();
        texts.dedup();
        let mut checked = 0;
        for pattern in &patterns {
            let Ok(glob) = Glob::new(pattern) else {
                continue;
            };
            for text in &texts {
                assert_eq!(
                    glob.matches(text),
                    automaton_matches(&glob.tokens, text),
                    "{pattern:?} on {text:?}"
                );
                checked += 1;
            }
        }
        assert!(checked > 1_000_000, "{checked}");
    }

    #[test]
    fn literal_patterns_are_indexable() {
        assert_eq!(
            Glob::new("search_docs").unwrap().literal(),
            Some("search_docs")
        );
        assert_eq!(Glob::new("search_*").unwrap().literal(), None);
    }

    #[test]
    fn refuses_what_it_does_not_support() {
        assert_eq!(Glob::new(""), Err(GlobError::Empty));
        assert_eq!(Glob::new("a[bc]"), Err(GlobError::Unsupported('[')));
        assert_eq!(Glob::new("{a,b}"), Err(GlobError::Unsupported('{')));
        assert_eq!(Glob::new("a***"), Err(GlobError::TripleStar));
        assert_eq!(Glob::new("a\\b"), Err(GlobError::Escape));
        assert_eq!(Glob::new("a\\"), Err(GlobError::Escape));
        assert_eq!(Glob::new("a\\["), Err(GlobError::Escape));
    }

    #[test]
    fn escaped_wildcards_are_literal() {
        assert!(m("docs://a\\?b", "docs://a?b"));
        assert!(!m("docs://a\\?b", "docs://axb"));
        assert!(m("x\\*", "x*"));
        assert!(!m("x\\*", "xy"));
        assert!(m("a\\\\b", "a\\b"));
        // An escaped star next to a double star is not a triple star.
        assert!(m("\\***", "*a/b"));
        assert!(!m("\\***", "a/b"));
        assert!(m("q\\?*", "q?anything"));
        assert!(!m("q\\?*", "qxanything"));
    }

    #[test]
    fn escaped_patterns_are_indexed_by_their_text() {
        let g = Glob::new("docs://faq\\?id=1").unwrap();
        assert_eq!(g.literal(), Some("docs://faq?id=1"));
        assert_eq!(g.as_str(), "docs://faq\\?id=1");
        assert_eq!(Glob::new("a\\?b*").unwrap().literal_prefix(), "a?b");
        assert_eq!(Glob::new("ab").unwrap().literal_prefix(), "ab");
    }

    #[test]
    fn escape_round_trips() {
        let pattern = "a\\*b\\?c\\\\d*";
        assert_eq!(escape(unescape(pattern).unwrap()), pattern);
    }

    #[test]
    fn pathological_patterns_stay_polynomial() {
        let text = "a".repeat(2000);
        assert!(!m(
            &"*a".repeat(50).replace("**", "* *"),
            &(text.clone() + "b")
        ));
        assert!(m("**a", &text));
    }
}
