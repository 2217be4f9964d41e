//! Decision counters, defined once in the root context (Envoy refuses
//! hostcalls such as `proxy_define_metric` while the module initialises).
//! Envoy exposes them as `wasmcustom.warden.decisions.<outcome>.<actor type>`.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

const OUTCOMES: [&str; 2] = ["allow", "deny"];
/// `none`: no verified identity (missing or bad token, unsupported method).
const ACTORS: [&str; 4] = ["human", "service", "agent", "none"];

pub(crate) struct Metrics {
    /// Counter ids, indexed `[outcome][actor]`.
    ids: [[u32; ACTORS.len()]; OUTCOMES.len()],
}

impl Metrics {
    pub(crate) fn define() -> Result<Self, String> {
        let mut ids = [[0; ACTORS.len()]; OUTCOMES.len()];
        for (row, outcome) in ids.iter_mut().zip(OUTCOMES) {
            for (slot, actor) in row.iter_mut().zip(ACTORS) {
                let name = format!("warden.decisions.{outcome}.{actor}");
                *slot = hostcalls::define_metric(MetricType::Counter, &name)
                    .map_err(|s| format!("`{name}`: {s:?}"))?;
            }
        }
        Ok(Self { ids })
    }

    pub(crate) fn count(&self, allowed: bool, actor_type: Option<&str>) {
        let outcome = usize::from(!allowed);
        let actor = actor_type
            .and_then(|t| ACTORS.iter().position(|a| *a == t))
            .unwrap_or(ACTORS.len() - 1);
        if let Some(id) = self.ids.get(outcome).and_then(|row| row.get(actor)) {
            // A failed increment must not affect the request.
            let _ = hostcalls::increment_metric(*id, 1);
        }
    }
}
