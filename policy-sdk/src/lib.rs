//! Warden's decision core: the MCP request model, bearer-token verification
//! and the actor model, the policy language with its compiler and evaluator,
//! audit records, and the per-request procedure (`gate`) that the proxy-wasm
//! filter adapts to proxy callbacks. No proxy-wasm dependency: everything
//! here is tested natively.

pub mod audit;
pub mod config;
pub mod documents;
pub mod exchange;
pub mod gate;
pub mod glob;
pub mod hashing;
pub mod identity;
pub mod json;
pub mod listing;
pub mod mcp;
pub mod normalize;
pub mod policy;
pub mod sealing;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use audit::AuditRecord;
pub use config::{FilterSettings, HeaderMode, PolicyDocument};
pub use exchange::{Exchange, Flow, StreamHost};
pub use gate::{
    BodyVerdict, ConfigError, FilteredList, Forwarding, HeadVerdict, ListAudience, ListPlan, Reply,
    RequestHead, Warden,
};
pub use identity::{ActorType, Identity, Principal};
pub use mcp::McpRequest;
pub use policy::{CompiledPolicy, Decision, Effect};
