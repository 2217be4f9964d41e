//! The MCP method facts: one entry per method name, read by the decoder,
//! the policy compiler, list visibility, list filtering, the gate and the
//! CLI, so that no stage spells a method name of its own.
//!
//! An entry says in which revisions the method exists, whether it is a
//! request or a notification, who sends it, what it acts on and through
//! which parameter, what 2026-07-28 clients mirror into `Mcp-Name`, which
//! list it answers, whether a session needs it, and what a server says
//! when the thing it names does not exist (the `disguise` deny mode).

use crate::listing::ListKind;
use ProtocolRevision::{V2024_11_05 as FIRST, V2025_06_18, V2025_11_25, V2026_07_28};

/// An MCP revision this build knows, oldest first (so `<` is "older than").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolRevision {
    V2024_11_05,
    V2025_03_26,
    V2025_06_18,
    V2025_11_25,
    V2026_07_28,
}

impl ProtocolRevision {
    /// Every revision, oldest first.
    pub const ALL: [Self; 5] = [
        Self::V2024_11_05,
        Self::V2025_03_26,
        Self::V2025_06_18,
        Self::V2025_11_25,
        Self::V2026_07_28,
    ];

    /// The date that names the revision in `MCP-Protocol-Version`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::V2024_11_05 => "2024-11-05",
            Self::V2025_03_26 => "2025-03-26",
            Self::V2025_06_18 => "2025-06-18",
            Self::V2025_11_25 => "2025-11-25",
            Self::V2026_07_28 => "2026-07-28",
        }
    }

    /// The revision a version string names, if this build knows it.
    pub fn parse(version: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == version)
    }
}

/// Whether a method expects an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodKind {
    /// Carries an `id` and gets a response.
    Request,
    /// Carries no `id` and gets none.
    Notification,
}

impl MethodKind {
    /// What a method outside the table is taken to be: a notification when
    /// its name is under `notifications/`, a request otherwise. Every
    /// notification the specification defines is named that way.
    pub fn by_name(method: &str) -> Self {
        if method.starts_with("notifications/") {
            Self::Notification
        } else {
            Self::Request
        }
    }
}

/// Who sends a method. Informational: a client message is judged by the
/// policy whoever is meant to send it (and no rule allows what it does not
/// name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    Client,
    Server,
    Either,
}

/// The kind of thing a method acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Tool,
    Resource,
    Prompt,
}

impl TargetKind {
    pub const ALL: [Self; 3] = [Self::Tool, Self::Resource, Self::Prompt];

    /// The methods that act on this kind of target, in any revision.
    pub fn methods(self) -> impl Iterator<Item = &'static str> {
        MethodFacts::all()
            .filter(move |f| f.target.is_some_and(|t| t.kind == self))
            .map(|f| f.name)
    }

    /// The method that uses a target of this kind (calls the tool, gets
    /// the prompt, reads the resource): what a listed entry offers.
    pub fn use_method(self) -> &'static MethodFacts {
        match self {
            Self::Tool => &TOOLS_CALL,
            Self::Resource => &RESOURCES_READ,
            Self::Prompt => &PROMPTS_GET,
        }
    }
}

/// A member of `params`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// `params.name`: a tool or prompt name.
    Name,
    /// `params.uri`: a resource URI.
    Uri,
}

impl Param {
    /// The member's key in `params`.
    pub fn key(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Uri => "uri",
        }
    }
}

/// What a method acts on, and the parameter that names it (required).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetFacts {
    pub kind: TargetKind,
    pub param: Param,
}

/// The shape of a list result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListFacts {
    pub kind: ListKind,
    /// The member of `result` holding the entries.
    pub result_key: &'static str,
    /// The member of an entry naming it.
    pub entry_key: &'static str,
}

/// The facts of one MCP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodFacts {
    /// The JSON-RPC method name.
    pub name: &'static str,
    /// The first revision with the method.
    pub since: ProtocolRevision,
    /// The last revision with the method; `None`: still in the newest.
    pub until: Option<ProtocolRevision>,
    pub kind: MethodKind,
    pub sender: Sender,
    /// What the method acts on, and through which required parameter.
    pub target: Option<TargetFacts>,
    /// The parameter 2026-07-28 clients mirror into the `Mcp-Name` header
    /// (earlier revisions have no such header; when one is sent anyway it
    /// is checked all the same).
    pub mcp_name: Option<Param>,
    /// The list the method answers with.
    pub list: Option<ListFacts>,
    /// Needed to open, keep or end a session (or, in 2026-07-28, to
    /// discover the server and listen to it): allowed to everyone by the
    /// policy default `allow_session_methods`.
    pub session: bool,
    /// What a server answers when the target does not exist, before `: `
    /// and the name or URI: the `disguise` deny mode's answer.
    pub disguise: Option<&'static str>,
}

impl MethodFacts {
    /// The facts of `method` in `revision`, if it exists there.
    pub fn of(method: &str, revision: ProtocolRevision) -> Option<&'static MethodFacts> {
        Self::named(method).filter(|f| f.exists_in(revision))
    }

    /// The facts of `method` in whichever revisions it exists.
    pub fn named(method: &str) -> Option<&'static MethodFacts> {
        Self::all().find(|f| f.name == method)
    }

    /// Every entry of the table.
    pub fn all() -> impl Iterator<Item = &'static MethodFacts> {
        TABLE.iter().copied()
    }

    /// Whether the method exists in `revision`.
    pub fn exists_in(&self, revision: ProtocolRevision) -> bool {
        self.since <= revision && self.until.is_none_or(|last| revision <= last)
    }

    /// Request or notification, as `revision` says; for a method the
    /// revision does not have (or an unknown revision), as its name says
    /// ([`MethodKind::by_name`]).
    pub fn kind_of(method: &str, revision: Option<ProtocolRevision>) -> MethodKind {
        let known = match revision {
            Some(revision) => Self::of(method, revision),
            None => Self::named(method),
        };
        known.map_or_else(|| MethodKind::by_name(method), |f| f.kind)
    }

    /// The methods a session needs, in any revision.
    pub fn session_methods() -> impl Iterator<Item = &'static str> {
        Self::all().filter(|f| f.session).map(|f| f.name)
    }
}

impl ListKind {
    /// The shape of this list's result.
    pub fn facts(self) -> &'static ListFacts {
        match self {
            Self::Tools => &TOOL_LIST,
            Self::Prompts => &PROMPT_LIST,
            Self::Resources => &RESOURCE_LIST,
            Self::ResourceTemplates => &RESOURCE_TEMPLATE_LIST,
        }
    }
}

/// The entry most methods start from: a client request in every revision,
/// with no target, list or session role.
const CLIENT_REQUEST: MethodFacts = MethodFacts {
    name: "",
    since: FIRST,
    until: None,
    kind: MethodKind::Request,
    sender: Sender::Client,
    target: None,
    mcp_name: None,
    list: None,
    session: false,
    disguise: None,
};

const NOTIFICATION: MethodFacts = MethodFacts {
    kind: MethodKind::Notification,
    ..CLIENT_REQUEST
};

const TOOL: Option<TargetFacts> = Some(TargetFacts {
    kind: TargetKind::Tool,
    param: Param::Name,
});
const PROMPT: Option<TargetFacts> = Some(TargetFacts {
    kind: TargetKind::Prompt,
    param: Param::Name,
});
const RESOURCE: Option<TargetFacts> = Some(TargetFacts {
    kind: TargetKind::Resource,
    param: Param::Uri,
});

static TOOL_LIST: ListFacts = ListFacts {
    kind: ListKind::Tools,
    result_key: "tools",
    entry_key: "name",
};
static PROMPT_LIST: ListFacts = ListFacts {
    kind: ListKind::Prompts,
    result_key: "prompts",
    entry_key: "name",
};
static RESOURCE_LIST: ListFacts = ListFacts {
    kind: ListKind::Resources,
    result_key: "resources",
    entry_key: "uri",
};
static RESOURCE_TEMPLATE_LIST: ListFacts = ListFacts {
    kind: ListKind::ResourceTemplates,
    result_key: "resourceTemplates",
    entry_key: "uriTemplate",
};

/// Opens a session (2024-11-05 to 2025-11-25).
pub static INITIALIZE: MethodFacts = MethodFacts {
    name: "initialize",
    until: Some(V2025_11_25),
    session: true,
    ..CLIENT_REQUEST
};
pub static TOOLS_CALL: MethodFacts = MethodFacts {
    name: "tools/call",
    target: TOOL,
    mcp_name: Some(Param::Name),
    disguise: Some("Unknown tool"),
    ..CLIENT_REQUEST
};
pub static PROMPTS_GET: MethodFacts = MethodFacts {
    name: "prompts/get",
    target: PROMPT,
    mcp_name: Some(Param::Name),
    disguise: Some("Unknown prompt"),
    ..CLIENT_REQUEST
};
pub static RESOURCES_READ: MethodFacts = MethodFacts {
    name: "resources/read",
    target: RESOURCE,
    mcp_name: Some(Param::Uri),
    disguise: Some("Unknown resource"),
    ..CLIENT_REQUEST
};
static RESOURCES_SUBSCRIBE: MethodFacts = MethodFacts {
    name: "resources/subscribe",
    until: Some(V2025_11_25),
    target: RESOURCE,
    disguise: Some("Unknown resource"),
    ..CLIENT_REQUEST
};
static RESOURCES_UNSUBSCRIBE: MethodFacts = MethodFacts {
    name: "resources/unsubscribe",
    ..RESOURCES_SUBSCRIBE
};
static PING: MethodFacts = MethodFacts {
    name: "ping",
    until: Some(V2025_11_25),
    sender: Sender::Either,
    session: true,
    ..CLIENT_REQUEST
};
static TOOLS_LIST: MethodFacts = MethodFacts {
    name: "tools/list",
    list: Some(TOOL_LIST),
    ..CLIENT_REQUEST
};
static PROMPTS_LIST: MethodFacts = MethodFacts {
    name: "prompts/list",
    list: Some(PROMPT_LIST),
    ..CLIENT_REQUEST
};
static RESOURCES_LIST: MethodFacts = MethodFacts {
    name: "resources/list",
    list: Some(RESOURCE_LIST),
    ..CLIENT_REQUEST
};
static RESOURCES_TEMPLATES_LIST: MethodFacts = MethodFacts {
    name: "resources/templates/list",
    list: Some(RESOURCE_TEMPLATE_LIST),
    ..CLIENT_REQUEST
};
static COMPLETION_COMPLETE: MethodFacts = MethodFacts {
    name: "completion/complete",
    ..CLIENT_REQUEST
};
static LOGGING_SET_LEVEL: MethodFacts = MethodFacts {
    name: "logging/setLevel",
    until: Some(V2025_11_25),
    ..CLIENT_REQUEST
};
/// 2026-07-28: what `initialize` told before, asked without a session.
static SERVER_DISCOVER: MethodFacts = MethodFacts {
    name: "server/discover",
    since: V2026_07_28,
    session: true,
    ..CLIENT_REQUEST
};
/// 2026-07-28: the stream of server messages the GET stream carried before.
static SUBSCRIPTIONS_LISTEN: MethodFacts = MethodFacts {
    name: "subscriptions/listen",
    since: V2026_07_28,
    session: true,
    ..CLIENT_REQUEST
};
/// 2025-11-25 tasks: either side may ask about the other's tasks.
static TASK_REQUEST: MethodFacts = MethodFacts {
    since: V2025_11_25,
    until: Some(V2025_11_25),
    sender: Sender::Either,
    ..CLIENT_REQUEST
};
static TASKS_GET: MethodFacts = MethodFacts {
    name: "tasks/get",
    ..TASK_REQUEST
};
static TASKS_RESULT: MethodFacts = MethodFacts {
    name: "tasks/result",
    ..TASK_REQUEST
};
static TASKS_LIST: MethodFacts = MethodFacts {
    name: "tasks/list",
    ..TASK_REQUEST
};
static TASKS_CANCEL: MethodFacts = MethodFacts {
    name: "tasks/cancel",
    ..TASK_REQUEST
};

static NOTIFICATIONS_INITIALIZED: MethodFacts = MethodFacts {
    name: "notifications/initialized",
    until: Some(V2025_11_25),
    session: true,
    ..NOTIFICATION
};
static NOTIFICATIONS_CANCELLED: MethodFacts = MethodFacts {
    name: "notifications/cancelled",
    sender: Sender::Either,
    ..NOTIFICATION
};
static NOTIFICATIONS_PROGRESS: MethodFacts = MethodFacts {
    name: "notifications/progress",
    sender: Sender::Either,
    ..NOTIFICATION
};
static NOTIFICATIONS_ROOTS_LIST_CHANGED: MethodFacts = MethodFacts {
    name: "notifications/roots/list_changed",
    until: Some(V2025_11_25),
    ..NOTIFICATION
};
static NOTIFICATIONS_TASKS_STATUS: MethodFacts = MethodFacts {
    name: "notifications/tasks/status",
    since: V2025_11_25,
    until: Some(V2025_11_25),
    sender: Sender::Either,
    ..NOTIFICATION
};

/// Server to client, up to 2025-11-25: the client answers them with
/// responses (`$response` in the policy).
const SERVER_REQUEST: MethodFacts = MethodFacts {
    sender: Sender::Server,
    until: Some(V2025_11_25),
    ..CLIENT_REQUEST
};
static SAMPLING_CREATE_MESSAGE: MethodFacts = MethodFacts {
    name: "sampling/createMessage",
    ..SERVER_REQUEST
};
static ROOTS_LIST: MethodFacts = MethodFacts {
    name: "roots/list",
    ..SERVER_REQUEST
};
static ELICITATION_CREATE: MethodFacts = MethodFacts {
    name: "elicitation/create",
    since: V2025_06_18,
    ..SERVER_REQUEST
};

const SERVER_NOTIFICATION: MethodFacts = MethodFacts {
    sender: Sender::Server,
    ..NOTIFICATION
};
static NOTIFICATIONS_MESSAGE: MethodFacts = MethodFacts {
    name: "notifications/message",
    ..SERVER_NOTIFICATION
};
static NOTIFICATIONS_RESOURCES_UPDATED: MethodFacts = MethodFacts {
    name: "notifications/resources/updated",
    ..SERVER_NOTIFICATION
};
static NOTIFICATIONS_RESOURCES_LIST_CHANGED: MethodFacts = MethodFacts {
    name: "notifications/resources/list_changed",
    ..SERVER_NOTIFICATION
};
static NOTIFICATIONS_PROMPTS_LIST_CHANGED: MethodFacts = MethodFacts {
    name: "notifications/prompts/list_changed",
    ..SERVER_NOTIFICATION
};
static NOTIFICATIONS_TOOLS_LIST_CHANGED: MethodFacts = MethodFacts {
    name: "notifications/tools/list_changed",
    ..SERVER_NOTIFICATION
};
static NOTIFICATIONS_ELICITATION_COMPLETE: MethodFacts = MethodFacts {
    name: "notifications/elicitation/complete",
    since: V2025_11_25,
    until: Some(V2025_11_25),
    ..SERVER_NOTIFICATION
};
static NOTIFICATIONS_SUBSCRIPTIONS_ACKNOWLEDGED: MethodFacts = MethodFacts {
    name: "notifications/subscriptions/acknowledged",
    since: V2026_07_28,
    ..SERVER_NOTIFICATION
};

/// The table: one entry per method name.
static TABLE: [&MethodFacts; 34] = [
    &INITIALIZE,
    &PING,
    &TOOLS_LIST,
    &TOOLS_CALL,
    &PROMPTS_LIST,
    &PROMPTS_GET,
    &RESOURCES_LIST,
    &RESOURCES_TEMPLATES_LIST,
    &RESOURCES_READ,
    &RESOURCES_SUBSCRIBE,
    &RESOURCES_UNSUBSCRIBE,
    &COMPLETION_COMPLETE,
    &LOGGING_SET_LEVEL,
    &SERVER_DISCOVER,
    &SUBSCRIPTIONS_LISTEN,
    &TASKS_GET,
    &TASKS_RESULT,
    &TASKS_LIST,
    &TASKS_CANCEL,
    &NOTIFICATIONS_INITIALIZED,
    &NOTIFICATIONS_CANCELLED,
    &NOTIFICATIONS_PROGRESS,
    &NOTIFICATIONS_ROOTS_LIST_CHANGED,
    &NOTIFICATIONS_TASKS_STATUS,
    &SAMPLING_CREATE_MESSAGE,
    &ROOTS_LIST,
    &ELICITATION_CREATE,
    &NOTIFICATIONS_MESSAGE,
    &NOTIFICATIONS_RESOURCES_UPDATED,
    &NOTIFICATIONS_RESOURCES_LIST_CHANGED,
    &NOTIFICATIONS_PROMPTS_LIST_CHANGED,
    &NOTIFICATIONS_TOOLS_LIST_CHANGED,
    &NOTIFICATIONS_ELICITATION_COMPLETE,
    &NOTIFICATIONS_SUBSCRIPTIONS_ACKNOWLEDGED,
];

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use ProtocolRevision::*;

    /// What the official SDKs' clients send (the MCP Python SDK 1.x and
    /// 2.x method maps, the TypeScript SDK's client), by revision.
    const CLIENT_METHODS_UP_TO_2025_11_25: [&str; 17] = [
        "initialize",
        "notifications/initialized",
        "ping",
        "tools/list",
        "tools/call",
        "prompts/list",
        "prompts/get",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "completion/complete",
        "logging/setLevel",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/roots/list_changed",
    ];
    const CLIENT_METHODS_2026_07_28: [&str; 11] = [
        "server/discover",
        "subscriptions/listen",
        "tools/list",
        "tools/call",
        "prompts/list",
        "prompts/get",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "completion/complete",
        "notifications/cancelled",
    ];

    #[test]
    fn every_method_the_sdks_send_is_in_the_table_for_its_revisions() {
        for revision in ProtocolRevision::ALL {
            let sent: &[&str] = if revision < V2026_07_28 {
                &CLIENT_METHODS_UP_TO_2025_11_25
            } else {
                &CLIENT_METHODS_2026_07_28
            };
            for method in sent {
                let facts = MethodFacts::of(method, revision);
                assert!(facts.is_some(), "{method} in {}", revision.as_str());
                assert_ne!(facts.map(|f| f.sender), Some(Sender::Server), "{method}");
            }
        }
        for removed in [
            "initialize",
            "ping",
            "logging/setLevel",
            "resources/subscribe",
        ] {
            assert_eq!(MethodFacts::of(removed, V2026_07_28), None, "{removed}");
        }
        for added in ["server/discover", "subscriptions/listen"] {
            assert_eq!(MethodFacts::of(added, V2025_11_25), None, "{added}");
        }
        assert_eq!(MethodFacts::of("elicitation/create", V2025_03_26), None);
        assert!(MethodFacts::of("elicitation/create", V2025_06_18).is_some());
    }

    #[test]
    fn one_entry_per_method_so_no_method_is_both_request_and_notification() {
        let mut names = HashSet::new();
        for facts in MethodFacts::all() {
            assert!(names.insert(facts.name), "{} twice", facts.name);
            assert!(
                facts.until.is_none_or(|last| facts.since <= last),
                "{}",
                facts.name
            );
            // The name-based reading of methods outside the table agrees
            // with every method in it.
            assert_eq!(
                MethodKind::by_name(facts.name),
                facts.kind,
                "{}",
                facts.name
            );
        }
        for revision in ProtocolRevision::ALL {
            for facts in MethodFacts::all().filter(|f| f.exists_in(revision)) {
                let kinds: HashSet<_> = MethodFacts::all()
                    .filter(|f| f.name == facts.name && f.exists_in(revision))
                    .map(|f| f.kind as u8)
                    .collect();
                assert_eq!(kinds.len(), 1, "{} in {}", facts.name, revision.as_str());
            }
        }
    }

    #[test]
    fn list_methods_and_result_keys_agree_with_listing() {
        let lists: Vec<_> = MethodFacts::all()
            .filter_map(|f| f.list.map(|l| (f.name, l)))
            .collect();
        assert_eq!(lists.len(), ListKind::ALL.len());
        for kind in ListKind::ALL {
            let (method, facts) = lists
                .iter()
                .find(|(_, l)| l.kind == kind)
                .unwrap_or_else(|| panic!("{kind:?} has no method"));
            assert_eq!(ListKind::for_method(method), Some(kind));
            assert_eq!(kind.facts(), facts);
            assert_eq!(kind.result_key(), facts.result_key);
            assert_eq!(kind.entry_key(), facts.entry_key);
            // A list exists wherever the specification has it.
            assert!(
                ProtocolRevision::ALL
                    .iter()
                    .all(|r| MethodFacts::of(method, *r).is_some())
            );
        }
        let keys: HashSet<_> = lists.iter().map(|(_, l)| l.result_key).collect();
        assert_eq!(keys.len(), lists.len());
        assert_eq!(
            lists
                .iter()
                .map(|(m, l)| (*m, l.result_key))
                .collect::<Vec<_>>(),
            [
                ("tools/list", "tools"),
                ("prompts/list", "prompts"),
                ("resources/list", "resources"),
                ("resources/templates/list", "resourceTemplates"),
            ]
        );
    }

    #[test]
    fn targets_mirrored_names_and_disguises_go_together() {
        for facts in MethodFacts::all() {
            // A disguise names a target; every target can be disguised.
            assert_eq!(
                facts.disguise.is_some(),
                facts.target.is_some(),
                "{}",
                facts.name
            );
            if let Some(param) = facts.mcp_name {
                assert_eq!(facts.target.map(|t| t.param), Some(param), "{}", facts.name);
            }
            if let Some(target) = facts.target {
                assert_eq!(facts.kind, MethodKind::Request, "{}", facts.name);
                let param = match target.kind {
                    TargetKind::Tool | TargetKind::Prompt => Param::Name,
                    TargetKind::Resource => Param::Uri,
                };
                assert_eq!(target.param, param, "{}", facts.name);
            }
        }
        let mirrored: Vec<_> = MethodFacts::all()
            .filter(|f| f.mcp_name.is_some())
            .map(|f| f.name)
            .collect();
        assert_eq!(mirrored, ["tools/call", "prompts/get", "resources/read"]);
        let resources: Vec<_> = TargetKind::Resource.methods().collect();
        assert_eq!(
            resources,
            [
                "resources/read",
                "resources/subscribe",
                "resources/unsubscribe"
            ]
        );
        for kind in TargetKind::ALL {
            let used = kind.use_method();
            assert_eq!(used.target.map(|t| t.kind), Some(kind));
            assert!(used.mcp_name.is_some(), "{}", used.name);
        }
        assert_eq!(TOOLS_CALL.disguise, Some("Unknown tool"));
    }

    #[test]
    fn session_methods_are_the_handshake_and_its_2026_replacements() {
        let session: Vec<_> = MethodFacts::session_methods().collect();
        assert_eq!(
            session,
            [
                "initialize",
                "ping",
                "server/discover",
                "subscriptions/listen",
                "notifications/initialized",
            ]
        );
    }

    #[test]
    fn kinds_follow_the_revision_and_the_name_outside_the_table() {
        assert_eq!(
            MethodFacts::kind_of("notifications/initialized", Some(V2025_06_18)),
            MethodKind::Notification
        );
        assert_eq!(
            MethodFacts::kind_of("tools/call", None),
            MethodKind::Request
        );
        // Not in 2026-07-28: read by its name, as any unknown method.
        assert_eq!(MethodFacts::of("ping", V2026_07_28), None);
        assert_eq!(
            MethodFacts::kind_of("ping", Some(V2026_07_28)),
            MethodKind::Request
        );
        assert_eq!(
            MethodFacts::kind_of("notifications/custom", Some(V2025_11_25)),
            MethodKind::Notification
        );
        assert_eq!(MethodFacts::kind_of("x/custom", None), MethodKind::Request);
    }

    #[test]
    fn revisions_parse_and_order() {
        for (i, revision) in ProtocolRevision::ALL.iter().enumerate() {
            assert_eq!(ProtocolRevision::parse(revision.as_str()), Some(*revision));
            if let Some(next) = ProtocolRevision::ALL.get(i + 1) {
                assert!(revision < next && revision.as_str() < next.as_str());
            }
        }
        assert_eq!(ProtocolRevision::parse("2025-03-27"), None);
        assert_eq!(ProtocolRevision::parse(" 2025-03-26"), None);
    }
}
