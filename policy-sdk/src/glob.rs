//! Glob patterns for tool names, prompt names, subjects, methods and URIs.
//!
//! `*` matches any run of characters except `/`, `**` matches any run
//! including `/`, `?` matches one character except `/`. Character classes and
//! alternatives are refused rather than silently taken literally, so a policy
//! author never believes a pattern means more than it does.

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
    has_wildcards: bool,
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
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Self, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        if pattern.contains("***") {
            return Err(GlobError::TripleStar);
        }
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            let token = match c {
                '*' if chars.peek() == Some(&'*') => {
                    chars.next();
                    Token::DoubleStar
                }
                '*' => Token::Star,
                '?' => Token::Question,
                '[' | ']' | '{' | '}' => return Err(GlobError::Unsupported(c)),
                other => Token::Literal(other),
            };
            tokens.push(token);
        }
        let has_wildcards = tokens.iter().any(|t| !matches!(t, Token::Literal(_)));
        Ok(Self {
            source: pattern.to_owned(),
            tokens,
            has_wildcards,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The literal text when the pattern has no wildcard: such patterns are
    /// indexed by exact name.
    pub fn literal(&self) -> Option<&str> {
        (!self.has_wildcards).then_some(self.source.as_str())
    }

    /// Whether `text` matches the whole pattern. Runs in O(len(text) ×
    /// len(pattern)) time, with no backtracking blow-up.
    #[expect(
        clippy::indexing_slicing,
        reason = "indices are bounded by the lengths of the vectors they index"
    )]
    pub fn matches(&self, text: &str) -> bool {
        // Most patterns in real policies are plain names.
        if self.literal().is_some() {
            return self.source == text;
        }
        let n = self.tokens.len();
        // prev[j]: the first j tokens match the text consumed so far.
        let mut prev = vec![false; n + 1];
        let mut cur = vec![false; n + 1];
        prev[0] = true;
        for j in 1..=n {
            prev[j] = prev[j - 1] && matches!(self.tokens[j - 1], Token::Star | Token::DoubleStar);
        }
        for c in text.chars() {
            cur[0] = false;
            for j in 1..=n {
                cur[j] = match self.tokens[j - 1] {
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
