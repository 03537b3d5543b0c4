//! Conditions following the Kubernetes API conventions: `lastTransitionTime` moves only when a
//! condition's status changes, so an unchanged installation re-renders an identical status.

use mesh_crds::{Condition, ConditionStatus, condition_type as ct};

/// A condition as a reconcile computes it, before timestamps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionUpdate {
    /// Condition type.
    pub type_: &'static str,
    /// Its status.
    pub status: ConditionStatus,
    /// CamelCase reason.
    pub reason: String,
    /// Human message.
    pub message: String,
}

impl ConditionUpdate {
    /// A condition that holds.
    pub fn ok(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        ConditionUpdate { type_, status: ConditionStatus::True, reason: reason.to_string(), message: message.into() }
    }

    /// A condition that does not hold.
    pub fn not_ok(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        ConditionUpdate { type_, status: ConditionStatus::False, reason: reason.to_string(), message: message.into() }
    }

    /// Whether it holds.
    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }
}

/// One problem, naming the field or object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// CamelCase reason for the condition.
    pub reason: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

/// Degraded=True with a reason and message.
pub fn degraded(reason: &str, message: String) -> ConditionUpdate {
    ConditionUpdate { type_: ct::DEGRADED, status: ConditionStatus::True, reason: reason.into(), message }
}

/// Now, RFC 3339 in UTC with second precision (as Kubernetes writes times).
pub fn now() -> String {
    jiff::Timestamp::now().round(jiff::Unit::Second).map(|t| t.to_string()).unwrap_or_default()
}

/// New conditions from `updates`, keeping each condition's `lastTransitionTime` from `old` unless
/// its status changed.
pub fn merge(old: &[Condition], updates: &[ConditionUpdate], now: &str, generation: Option<i64>) -> Vec<Condition> {
    updates
        .iter()
        .map(|update| {
            let previous = old.iter().find(|c| c.type_ == update.type_);
            let last_transition_time = match previous {
                Some(prev) if prev.status == update.status => prev.last_transition_time.clone(),
                _ => now.to_string(),
            };
            Condition {
                type_: update.type_.to_string(),
                status: update.status,
                reason: update.reason.clone(),
                message: update.message.clone(),
                last_transition_time,
                observed_generation: generation,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
