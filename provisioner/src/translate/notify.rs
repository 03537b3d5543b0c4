//! Collecting [`Notification`]s: one per finding, deduplicated, most severe first.

use std::collections::BTreeSet;

use mesh_crds::{Notification, NotificationLevel};

/// `Kind/namespace/name`, the form every notification uses to name its object.
pub fn object_ref(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}/{namespace}/{name}")
}

/// The findings of one translation.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    set: BTreeSet<Notification>,
}

impl Notes {
    /// Records a finding. Messages are kept on one line so the CLI can print one per line.
    pub(crate) fn push(&mut self, level: NotificationLevel, object: &str, message: impl Into<String>) {
        let message: String = message.into();
        let message = if message.contains(['\n', '\r']) { message.replace(['\n', '\r'], " ") } else { message };
        self.set.insert(Notification { level, object: object.to_string(), message });
    }

    pub(crate) fn error(&mut self, object: &str, message: impl Into<String>) {
        self.push(NotificationLevel::Error, object, message);
    }

    pub(crate) fn warning(&mut self, object: &str, message: impl Into<String>) {
        self.push(NotificationLevel::Warning, object, message);
    }

    pub(crate) fn info(&mut self, object: &str, message: impl Into<String>) {
        self.push(NotificationLevel::Info, object, message);
    }

    /// The ERROR messages recorded for `object`.
    pub(crate) fn errors_of(&self, object: &str) -> Vec<String> {
        let from = Notification { level: NotificationLevel::Error, object: object.to_string(), message: String::new() };
        self.set
            .range(from..)
            .take_while(|n| n.level == NotificationLevel::Error && n.object == object)
            .map(|n| n.message.clone())
            .collect()
    }

    /// The findings, ERROR first, then WARNING, then INFO; within a level by object and message.
    pub(crate) fn into_vec(self) -> Vec<Notification> {
        self.set.into_iter().collect()
    }
}

/// Shortens a user-supplied string for a message (regexes can be long).
pub(crate) fn quote(value: &str) -> String {
    const MAX: usize = 120;
    if value.chars().count() <= MAX {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(MAX).collect();
        format!("{head:?}… ({} characters)", value.chars().count())
    }
}
