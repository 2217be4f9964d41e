//! Finds where a field of a YAML document is written, so diagnostics can
//! point at `file:line:column` for a path such as `rules[3].principal.types[0]`.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Line and column (both 1-based) of every node, by path.
#[derive(Debug, Default)]
pub struct SourceMap {
    positions: HashMap<String, (usize, usize)>,
    scalars: HashMap<String, String>,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    map: SourceMap,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

impl Builder {
    /// The path of the node that starts now, or `None` for a mapping key.
    fn next_path(&mut self) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { key: None, .. }) => None,
            Some(Frame::Map { path, key }) => {
                let full = join(path, key.as_deref().unwrap_or_default());
                *key = None;
                Some(full)
            }
            Some(Frame::Seq { path, index }) => {
                let full = format!("{path}[{index}]");
                *index += 1;
                Some(full)
            }
        }
    }

    fn record(&mut self, path: &str, mark: Marker) {
        self.map
            .positions
            .entry(path.to_owned())
            .or_insert((mark.line().max(1), mark.col() + 1));
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(value, ..) => match self.next_path() {
                Some(path) => {
                    self.record(&path, mark);
                    self.map.scalars.insert(path, value);
                }
                None => {
                    // A mapping key: the value's position is the key's.
                    if let Some(Frame::Map { path, key }) = self.stack.last_mut() {
                        let full = join(path, &value);
                        *key = Some(value);
                        self.map
                            .positions
                            .entry(full)
                            .or_insert((mark.line().max(1), mark.col() + 1));
                    }
                }
            },
            Event::MappingStart(..) => {
                let path = self.next_path().unwrap_or_default();
                self.record(&path, mark);
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.next_path().unwrap_or_default();
                self.record(&path, mark);
                self.stack.push(Frame::Seq { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Alias(_) => {
                if let Some(path) = self.next_path() {
                    self.record(&path, mark);
                }
            }
            _ => {}
        }
    }
}

impl SourceMap {
    /// Maps a YAML (or JSON) text; an unparsable text maps nothing.
    pub fn new(text: &str) -> Self {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut builder, false).is_err() {
            return builder.map;
        }
        builder.map
    }

    /// Where `path` is written; for a path that is not in the text, where its
    /// closest written ancestor is.
    pub fn position(&self, path: &str) -> Option<(usize, usize)> {
        let mut path = path;
        loop {
            if let Some(position) = self.positions.get(path) {
                return Some(*position);
            }
            let cut = path.rfind(['.', '['])?;
            path = path.get(..cut)?;
        }
    }

    /// The path of the `rules` entry whose `id` is `id`.
    pub fn rule_path(&self, id: &str) -> Option<String> {
        (0..)
            .map(|i| format!("rules[{i}]"))
            .take_while(|p| self.positions.contains_key(p))
            .find(|p| self.scalars.get(&format!("{p}.id")).map(String::as_str) == Some(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_point_at_lines_and_columns() {
        let text = "version: 1\nrules:\n  - id: a\n    principal:\n      types: [human, robot]\n  - id: b\n    tools: {x: 1}\n";
        let map = SourceMap::new(text);
        assert_eq!(map.position("version"), Some((1, 1)));
        assert_eq!(map.rule_path("b").as_deref(), Some("rules[1]"));
        assert_eq!(map.position("rules[0].principal.types[1]"), Some((5, 22)));
        assert_eq!(map.position("rules[1].tools.x"), Some((7, 13)));
        // Unwritten fields fall back to their closest ancestor.
        assert_eq!(map.position("rules[1].arguments[0]").map(|p| p.0), Some(6));
    }
}
