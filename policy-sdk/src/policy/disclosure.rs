//! Who learns why a request was denied. By default nobody: a denial says
//! only that the policy refused the request (and Warden's request id, to
//! find the audit line). A policy opts in per actor type
//! (`filter.disclose_reasons`), a rule overrides that for the denials tied
//! to it (`disclose_reasons` on the rule).

use crate::identity::ActorType;

/// The actor types a denial shows its rule id and reason to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Disclosure {
    human: bool,
    service: bool,
    agent: bool,
}

/// Why a `disclose_reasons` list is refused: the offending entry's index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisclosureError {
    #[error("unknown actor type `{name}`")]
    UnknownType { index: usize, name: String },
    #[error("`{name}` is listed twice")]
    Duplicate { index: usize, name: String },
}

impl DisclosureError {
    /// The position in the list of the entry at fault.
    pub fn index(&self) -> usize {
        match self {
            Self::UnknownType { index, .. } | Self::Duplicate { index, .. } => *index,
        }
    }
}

impl Disclosure {
    /// Nobody learns the rule or the reason.
    pub const NOBODY: Self = Self {
        human: false,
        service: false,
        agent: false,
    };

    /// Reads a list of actor type names (`human`, `service`, `agent`).
    /// An empty list is valid: it discloses to nobody.
    pub fn parse(names: &[String]) -> Result<Self, DisclosureError> {
        let mut disclosure = Self::NOBODY;
        for (index, name) in names.iter().enumerate() {
            let actor_type =
                ActorType::parse(name).ok_or_else(|| DisclosureError::UnknownType {
                    index,
                    name: name.clone(),
                })?;
            let slot = disclosure.slot(actor_type);
            if *slot {
                return Err(DisclosureError::Duplicate {
                    index,
                    name: name.clone(),
                });
            }
            *slot = true;
        }
        Ok(disclosure)
    }

    fn slot(&mut self, actor_type: ActorType) -> &mut bool {
        match actor_type {
            ActorType::Human => &mut self.human,
            ActorType::Service => &mut self.service,
            ActorType::Agent => &mut self.agent,
        }
    }

    /// Whether a caller of this actor type learns the rule and reason. An
    /// unclassifiable caller never does.
    pub fn includes(self, actor_type: Option<ActorType>) -> bool {
        match actor_type {
            Some(ActorType::Human) => self.human,
            Some(ActorType::Service) => self.service,
            Some(ActorType::Agent) => self.agent,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn each_listed_type_and_only_it_is_included() {
        let agents = Disclosure::parse(&names(&["agent"])).unwrap();
        assert!(agents.includes(Some(ActorType::Agent)));
        assert!(!agents.includes(Some(ActorType::Human)));
        assert!(!agents.includes(Some(ActorType::Service)));
        let people = Disclosure::parse(&names(&["human", "service"])).unwrap();
        assert!(people.includes(Some(ActorType::Human)));
        assert!(people.includes(Some(ActorType::Service)));
        assert!(!people.includes(Some(ActorType::Agent)));
    }

    #[test]
    fn an_empty_list_and_unclassified_callers_learn_nothing() {
        let nobody = Disclosure::parse(&[]).unwrap();
        assert_eq!(nobody, Disclosure::NOBODY);
        for actor_type in ActorType::ALL {
            assert!(!nobody.includes(Some(actor_type)));
        }
        let all = Disclosure::parse(&names(&["human", "service", "agent"])).unwrap();
        assert!(!all.includes(None));
    }

    #[test]
    fn unknown_and_repeated_types_are_refused_with_their_index() {
        let unknown = Disclosure::parse(&names(&["human", "robot"])).unwrap_err();
        assert_eq!(unknown.index(), 1);
        assert_eq!(unknown.to_string(), "unknown actor type `robot`");
        let twice = Disclosure::parse(&names(&["agent", "human", "agent"])).unwrap_err();
        assert_eq!(twice.index(), 2);
        assert_eq!(twice.to_string(), "`agent` is listed twice");
    }
}
