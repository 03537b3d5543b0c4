//! ACR imports of `spec.registry.images`, a few at a time, each recorded as it starts and ends.

use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::ResourceExt;
use mesh_crds::{MeshInstallation, condition_type as ct};
use mesh_provisioner::azure::acr::{self, RegistryRef};
use mesh_provisioner::azure::{ArmError, PollOutcome, PollingKind, Target, WriteOutcome};

use super::*;
use crate::context::Context;
use crate::error::Result;
use crate::reconcile::conditions::ConditionUpdate;
use crate::reconcile::status::Record;

pub(super) async fn images(arm: &Arm<'_>, journal: &mut Record, findings: &mut Findings) -> Result<()> {
    let Arm { mi, ctx, azure, .. } = *arm;
    let Some(registry) = &mi.spec.registry else { return Ok(()) };
    let fatal_key = format!("{}/images", mi.name_any());
    let fatal = ctx.azure.fatal_recall(&fatal_key, mi.metadata.generation);
    let registry_ref = RegistryRef::from_spec(azure, registry);
    let login = registry.login_server(azure.cloud);
    let reference = |target: &str| format!("{login}/{target}");
    // While a fatal error waits for a person, imports already started are still followed to their
    // end (and recorded, in the status and the ledger), but no new one is sent.
    let pending: Vec<&mesh_crds::ImageImport> = registry
        .images
        .iter()
        .filter(|i| !journal.status().imported_images.contains(&reference(&i.target)))
        .filter(|i| fatal.is_none() || journal.op(&format!("{}{}", operation::IMPORT_PREFIX, i.target)).is_some())
        .collect();
    if let Some(fatal) = &fatal
        && pending.is_empty()
    {
        findings.progress.images = Some(fatal.condition.clone());
        findings.progress.degraded = Some(fatal.degraded.clone());
        findings.wait(fatal.until.saturating_duration_since(Instant::now()));
        return Ok(());
    }

    let shared = tokio::sync::Mutex::new(&mut *journal);
    type Boxed<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<ImportResult>> + Send + 'a>>;
    let futures: Vec<Boxed<'_>> = pending
        .into_iter()
        .map(|image| {
            Box::pin(import_one(arm, &registry_ref, registry.mode, image, reference(&image.target), &shared))
                as Boxed<'_>
        })
        .collect();
    let results: Vec<ImportResult> = futures::stream::iter(futures)
        .buffer_unordered(IMPORT_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;

    let mut importing = Vec::new();
    let mut first_error: Option<ArmError> = None;
    // Every image that needs a person is named, not only the first.
    let fatal_messages: Vec<String> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().err().filter(|e| !e.is_retryable()).map(ArmError::condition_message))
        .collect();
    for (target, result) in results {
        match result {
            Ok(Some(wait)) => {
                importing.push(target);
                findings.wait(wait);
            }
            Ok(None) => {}
            Err(error) => {
                if first_error.is_none()
                    || (!error.is_retryable() && first_error.as_ref().is_some_and(|e| e.is_retryable()))
                {
                    first_error = Some(error);
                } else {
                    findings.errors.push(error);
                }
            }
        }
    }
    let done: Vec<&mesh_crds::ImageImport> =
        registry.images.iter().filter(|i| journal.status().imported_images.contains(&reference(&i.target))).collect();
    for image in &done {
        findings.outcome.image_overrides.insert(image.source.clone(), reference(&image.target));
    }
    let total = registry.images.len();
    if let Some(fatal) = fatal {
        let mut condition = fatal.condition;
        let problem = condition.message.split_once("; ").map_or(condition.message.clone(), |(_, p)| p.to_string());
        condition.message = format!("{} of {total} image(s) imported; {problem}", done.len());
        findings.progress.images = Some(condition);
        findings.progress.degraded = Some(fatal.degraded);
        findings.wait(fatal.until.saturating_duration_since(Instant::now()));
        return Ok(());
    }
    findings.progress.images = Some(if let Some(error) = first_error {
        let fatal = !error.is_retryable();
        let mut condition = findings.error(error);
        condition.type_ = ct::IMAGES_IMPORTED;
        let also: Vec<&String> = fatal_messages.iter().filter(|m| **m != condition.message).collect();
        condition.message = format!("{} of {total} image(s) imported; {}", done.len(), condition.message);
        for message in also {
            condition.message = format!("{}; {message}", condition.message);
        }
        if fatal && let Some(degraded) = &findings.progress.degraded {
            ctx.azure.fatal_remember(&fatal_key, mi.metadata.generation, &condition, degraded);
        }
        condition
    } else if !importing.is_empty() {
        importing.sort();
        ConditionUpdate::not_ok(
            ct::IMAGES_IMPORTED,
            "Importing",
            format!("{} of {total} image(s) imported into {login}; importing {}", done.len(), importing.join(", ")),
        )
    } else if total == 0 {
        ConditionUpdate::ok(ct::IMAGES_IMPORTED, "NothingToImport", "spec.registry lists no images")
    } else {
        ConditionUpdate::ok(ct::IMAGES_IMPORTED, "Imported", format!("{total} image(s) imported into {login}"))
    });
    Ok(())
}

pub(super) type ImportResult = (String, Result<Option<Duration>, ArmError>);

/// Polls a stored import or starts one; records the outcome in the journal at once.
pub(super) async fn import_one(
    arm: &Arm<'_>,
    registry_ref: &RegistryRef,
    mode: mesh_crds::ImportMode,
    image: &mesh_crds::ImageImport,
    target_ref: String,
    shared: &tokio::sync::Mutex<&mut Record>,
) -> Result<ImportResult> {
    let Arm { mi, ctx, applier, client, .. } = *arm;
    let op_name = format!("{}{}", operation::IMPORT_PREFIX, image.target);
    let what = format!("importing {} as {target_ref}", image.source);
    let stored = shared.lock().await.op(&op_name);
    let result = if let Some(stored) = stored {
        let kind = PollingKind::parse(&stored.polling_kind).unwrap_or(PollingKind::Location);
        match client.poll(&stored.polling_url, kind, &what, Target::Registry).await {
            Ok(PollOutcome::Running(wait)) => {
                let mut journal = shared.lock().await;
                journal.polled(&op_name);
                journal.persist(ctx).await?;
                Ok(Some(wait))
            }
            Ok(PollOutcome::Succeeded) => {
                ledger::record(ctx, applier, &ledger_entry(mi, registry_ref, image)).await?;
                let mut journal = shared.lock().await;
                journal.finish(&op_name);
                journal.imported(&target_ref);
                journal.persist(ctx).await?;
                Ok(None)
            }
            Ok(PollOutcome::Failed(error)) => {
                let result = existing_tag(ctx, registry_ref, image, &target_ref, error).await?;
                let mut journal = shared.lock().await;
                journal.finish(&op_name);
                if result.is_ok() {
                    journal.imported(&target_ref);
                }
                journal.persist(ctx).await?;
                result
            }
            Err(error) if error.is_stale_operation() => {
                let mut journal = shared.lock().await;
                if journal.poll_failed(&op_name) {
                    tracing::warn!(installation = %mi.name_any(), operation = %op_name, "stored import gave no usable answer {MAX_FAILED_POLLS} times ({error}); importing again");
                }
                journal.persist(ctx).await?;
                Ok(Some(STALE_POLL_RETRY))
            }
            Err(error) => Err(error),
        }
    } else {
        match acr::import(client, registry_ref, image, mode).await {
            Ok(WriteOutcome::Started(started)) => {
                let mut journal = shared.lock().await;
                journal.start(&op_name, &registry_ref.id(), &started);
                journal.persist(ctx).await?;
                Ok(Some(started.retry_after.unwrap_or(Duration::from_secs(1))))
            }
            Ok(_) => {
                ledger::record(ctx, applier, &ledger_entry(mi, registry_ref, image)).await?;
                let mut journal = shared.lock().await;
                journal.imported(&target_ref);
                journal.persist(ctx).await?;
                Ok(None)
            }
            Err(error) => {
                let result = existing_tag(ctx, registry_ref, image, &target_ref, error).await?;
                if result.is_ok() {
                    let mut journal = shared.lock().await;
                    journal.imported(&target_ref);
                    journal.persist(ctx).await?;
                }
                result
            }
        }
    };
    Ok((image.target.clone(), result))
}

fn ledger_entry(mi: &MeshInstallation, registry: &RegistryRef, image: &mesh_crds::ImageImport) -> ledger::Entry {
    ledger::Entry {
        registry: registry.id(),
        target: image.target.clone(),
        source: image.source.clone(),
        installation: mi.name_any(),
    }
}

/// Whether an import failed because its target tag exists (`NoForce`): ACR refuses before
/// copying anything, with 409 on the request or as the operation's error.
fn is_existing_tag(error: &ArmError) -> bool {
    match error {
        ArmError::Response { status: 409, target: Target::Registry, .. } => true,
        ArmError::OperationFailed { target: Target::Registry, code, message, .. } => {
            code.contains("Conflict") || code.contains("AlreadyExists") || message.contains("already exists")
        }
        _ => false,
    }
}

/// An import refused because the tag exists: imported when the ledger says this tag came from this
/// very source, else a conflict naming the tag (see [`ledger`]). Other errors pass through.
async fn existing_tag(
    ctx: &Context,
    registry: &RegistryRef,
    image: &mesh_crds::ImageImport,
    target_ref: &str,
    error: ArmError,
) -> Result<Result<Option<Duration>, ArmError>> {
    if !is_existing_tag(&error) {
        return Ok(Err(error));
    }
    let entry = ledger::lookup(ctx, &registry.id(), &image.target).await?;
    let existing = ledger::classify(entry.as_ref(), &registry.id(), &image.target, &image.source);
    if existing == ledger::Existing::SameSource {
        tracing::info!(target = %target_ref, source = %image.source, "image already imported from the same source; not copied again");
        return Ok(Ok(None));
    }
    let login = target_ref.strip_suffix(&format!("/{}", image.target)).unwrap_or(target_ref);
    Ok(Err(ArmError::ImageTagConflict {
        operation: format!("importing {} as {target_ref}", image.source),
        message: ledger::conflict_message(&existing, login, &image.target, &image.source),
    }))
}
