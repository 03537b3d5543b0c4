//! ACR imports of `spec.registry.images`, a few at a time, each recorded as it starts and ends.

use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::ResourceExt;
use mesh_crds::{AzureSpec, MeshInstallation, condition_type as ct};
use mesh_provisioner::azure::acr::{self, RegistryRef};
use mesh_provisioner::azure::{ArmClient, ArmError, PollOutcome, PollingKind, Target, WriteOutcome};

use super::*;
use crate::context::Context;
use crate::error::Result;
use crate::reconcile::conditions::ConditionUpdate;

pub(super) async fn images(
    mi: &MeshInstallation,
    ctx: &Context,
    client: &ArmClient,
    azure: &AzureSpec,
    journal: &mut Journal,
    findings: &mut Findings,
) -> Result<()> {
    let Some(registry) = &mi.spec.registry else { return Ok(()) };
    let fatal_key = format!("{}/images", mi.name_any());
    if let Some(fatal) = ctx.azure.fatal_recall(&fatal_key, mi.metadata.generation) {
        findings.progress.images = Some(fatal.condition);
        findings.progress.degraded = Some(fatal.degraded);
        findings.wait(fatal.until.saturating_duration_since(Instant::now()));
        return Ok(());
    }
    let registry_ref = RegistryRef::from_spec(azure, registry);
    let login = registry.login_server(azure.cloud);
    let reference = |target: &str| format!("{login}/{target}");
    let pending: Vec<&mesh_crds::ImageImport> =
        registry.images.iter().filter(|i| !journal.status.imported_images.contains(&reference(&i.target))).collect();

    let shared =
        tokio::sync::Mutex::new(std::mem::replace(journal, Journal { status: Default::default(), dirty: false }));
    type Boxed<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<ImportResult>> + Send + 'a>>;
    let futures: Vec<Boxed<'_>> = pending
        .into_iter()
        .map(|image| {
            Box::pin(import_one(
                ctx,
                mi,
                client,
                &registry_ref,
                registry.mode,
                image,
                reference(&image.target),
                &shared,
            )) as Boxed<'_>
        })
        .collect();
    let results: Vec<ImportResult> = futures::stream::iter(futures)
        .buffer_unordered(IMPORT_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    *journal = shared.into_inner();

    let mut importing = Vec::new();
    let mut first_error: Option<ArmError> = None;
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
        registry.images.iter().filter(|i| journal.status.imported_images.contains(&reference(&i.target))).collect();
    for image in &done {
        findings.outcome.image_overrides.insert(image.source.clone(), reference(&image.target));
    }
    let total = registry.images.len();
    findings.progress.images = Some(if let Some(error) = first_error {
        let fatal = !error.is_retryable();
        let mut condition = findings.error(error);
        condition.type_ = ct::IMAGES_IMPORTED;
        condition.message = format!("{} of {total} image(s) imported; {}", done.len(), condition.message);
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
#[allow(clippy::too_many_arguments)]
pub(super) async fn import_one(
    ctx: &Context,
    mi: &MeshInstallation,
    client: &ArmClient,
    registry_ref: &RegistryRef,
    mode: mesh_crds::ImportMode,
    image: &mesh_crds::ImageImport,
    target_ref: String,
    shared: &tokio::sync::Mutex<Journal>,
) -> Result<ImportResult> {
    let op_name = format!("{}{}", operation::IMPORT_PREFIX, image.target);
    let what = format!("importing {} as {target_ref}", image.source);
    let stored = shared.lock().await.op(&op_name);
    let result = if let Some(stored) = stored {
        let kind = PollingKind::parse(&stored.polling_kind).unwrap_or(PollingKind::Location);
        match client.poll(&stored.polling_url, kind, &what, Target::Registry).await {
            Ok(PollOutcome::Running(wait)) => {
                let mut journal = shared.lock().await;
                journal.polled(&op_name);
                journal.persist(ctx, mi).await?;
                Ok(Some(wait))
            }
            Ok(PollOutcome::Succeeded) => {
                let mut journal = shared.lock().await;
                journal.finish(&op_name);
                journal.imported(&target_ref);
                journal.persist(ctx, mi).await?;
                Ok(None)
            }
            Ok(PollOutcome::Failed(error)) => {
                let mut journal = shared.lock().await;
                journal.finish(&op_name);
                journal.persist(ctx, mi).await?;
                Err(error)
            }
            Err(error) if error.is_stale_operation() => {
                let mut journal = shared.lock().await;
                if journal.poll_failed(&op_name) {
                    tracing::warn!(installation = %mi.name_any(), operation = %op_name, "stored import gave no usable answer {MAX_FAILED_POLLS} times ({error}); importing again");
                }
                journal.persist(ctx, mi).await?;
                Ok(Some(STALE_POLL_RETRY))
            }
            Err(error) => Err(error),
        }
    } else {
        match acr::import(client, registry_ref, image, mode).await {
            Ok(WriteOutcome::Started(started)) => {
                let mut journal = shared.lock().await;
                journal.start(&op_name, &registry_ref.id(), &started);
                journal.persist(ctx, mi).await?;
                Ok(Some(started.retry_after.unwrap_or(Duration::from_secs(1))))
            }
            Ok(_) => {
                let mut journal = shared.lock().await;
                journal.imported(&target_ref);
                journal.persist(ctx, mi).await?;
                Ok(None)
            }
            Err(error) => Err(error),
        }
    };
    Ok((image.target.clone(), result))
}
