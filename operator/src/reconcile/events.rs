//! Kubernetes Events about an installation: what a reconcile applied or could not apply, and
//! translation findings (each once). Best effort: a failed publish is logged, never an error.

use kube::Resource;
use kube::runtime::events::{Event as KubeEvent, EventType};
use mesh_crds::MeshInstallation;

use super::progress::bounded_notifications;
use crate::context::Context;

/// Publishes one Event about `mi`.
pub async fn publish(ctx: &Context, mi: &MeshInstallation, type_: EventType, reason: &str, action: &str, note: String) {
    publish_to(ctx, &mi.object_ref(&()), type_, reason, action, note).await;
}

/// Publishes one Event about the object `reference` names (one that may not be readable).
pub async fn publish_to(
    ctx: &Context,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = KubeEvent { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None };
    if let Err(error) = ctx.recorder.publish(&event, reference).await {
        tracing::debug!("could not publish event: {error}");
    }
}

/// Translation findings become Events too, once: only those status shows that the stored status
/// does not hold yet (the ones status leaves out are counted there, never published, so they are
/// not repeated on every reconcile either).
pub async fn publish_new_notifications(
    ctx: &Context,
    mi: &MeshInstallation,
    notifications: &[mesh_crds::Notification],
) {
    let known = mi.status.as_ref().map(|s| s.notifications.clone()).unwrap_or_default();
    let (shown, _) = bounded_notifications(notifications);
    for note in shown.iter().filter(|n| !known.contains(n)).take(20) {
        let (type_, reason) = match note.level {
            mesh_crds::NotificationLevel::Error => (EventType::Warning, "TranslationError"),
            mesh_crds::NotificationLevel::Warning => (EventType::Warning, "TranslationWarning"),
            mesh_crds::NotificationLevel::Info => (EventType::Normal, "TranslationInfo"),
        };
        publish(ctx, mi, type_, reason, "Translate", format!("{}: {}", note.object, note.message)).await;
    }
}
