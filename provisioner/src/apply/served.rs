//! Kinds defined by a CustomResourceDefinition are served only while their CRD exists: a watch
//! or a request for such a kind before its CRD is Established (or after it went) gets the API
//! server's plain-text `404 page not found`, which kube-client logs as a WARN on every retry.
//! So a kind's stream runs only while it is served: built-in kinds' at once, a CRD kind's from
//! when its CRD is Established until its CRD is being deleted, driven by one metadata watch of
//! the CRDs. [`ServedKinds`] tells callers which kinds they may ask the API server about.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::stream::{AbortHandle, BoxStream, SelectAll};
use futures::{Stream, StreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::ApiResource;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};

use kube::runtime::{WatchStreamExt, watcher as watch};
use kube::{Api, Client};

/// API groups the API server itself serves: their kinds never need a CRD.
pub const BUILT_IN_GROUPS: [&str; 6] = [
    "",
    "apps",
    "rbac.authorization.k8s.io",
    "networking.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
];

/// Name of the CRD defining `resource` (`<plural>.<group>`), or None for a built-in kind.
pub fn crd_name(resource: &ApiResource) -> Option<String> {
    if BUILT_IN_GROUPS.contains(&resource.group.as_str()) {
        None
    } else {
        Some(format!("{}.{}", resource.plural, resource.group))
    }
}

#[derive(Default)]
struct State {
    /// The CRD watch has listed once: absent means absent.
    synced: bool,
    /// CRDs that exist, by name, and whether each is Established yet.
    present: BTreeMap<String, bool>,
}

/// Which kinds the API server serves now, as the CRD watch last saw them.
#[derive(Clone, Default)]
pub struct ServedKinds {
    state: Arc<RwLock<State>>,
}

impl ServedKinds {
    /// `Some(true)` for built-in kinds and kinds whose CRD is Established, `Some(false)` for a
    /// kind whose CRD does not exist, `None` while that is not known (the CRD watch has not
    /// listed yet, or the CRD exists but is not Established yet): callers then ask.
    pub fn served(&self, resource: &ApiResource) -> Option<bool> {
        let Some(crd) = crd_name(resource) else { return Some(true) };
        let state = self.state.read().ok()?;
        match state.present.get(&crd) {
            Some(true) => Some(true),
            Some(false) => None,
            None if state.synced => Some(false),
            None => None,
        }
    }

    /// Records CRD `crd` as present (Established or not yet), or gone (`None`).
    fn set(&self, crd: &str, established: Option<bool>) {
        if let Ok(mut state) = self.state.write() {
            match established {
                Some(established) => state.present.insert(crd.to_string(), established),
                None => state.present.remove(crd),
            };
        }
    }

    fn mark_synced(&self) {
        if let Ok(mut state) = self.state.write() {
            state.synced = true;
        }
    }
}

/// How often a new CRD is checked for its Established condition.
const ESTABLISHED_POLL: Duration = Duration::from_millis(100);

/// Waits until CRD `name` is Established (the API server then serves its kind) and records it.
async fn established(client: Client, name: String, served: ServedKinds) {
    let api: Api<CustomResourceDefinition> = Api::all(client);
    loop {
        match api.get_opt(&name).await {
            Ok(Some(crd)) if is_established(&crd) => {
                served.set(&name, Some(true));
                return;
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(crd = %name, "reading CRD: {error}"),
        }
        tokio::time::sleep(ESTABLISHED_POLL).await;
    }
}

fn is_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conds| conds.iter().any(|c| c.type_ == "Established" && c.status == "True"))
}

/// Starts and stops the streams of CRD kinds as their CRDs come and go.
struct Driver<T, Start, Stop> {
    client: Client,
    /// CRD name → the kinds it defines (one, in practice).
    by_crd: BTreeMap<String, Vec<ApiResource>>,
    start: Start,
    stop: Stop,
    running: SelectAll<BoxStream<'static, T>>,
    handles: BTreeMap<String, Vec<AbortHandle>>,
    seen_in_listing: BTreeSet<String>,
    served: ServedKinds,
}

impl<T, Start, Stop> Driver<T, Start, Stop>
where
    T: Send + 'static,
    Start: FnMut(&ApiResource) -> BoxStream<'static, T>,
    Stop: FnMut(&ApiResource),
{
    fn launch(&mut self, resource: &ApiResource, wait_for: Option<String>) -> AbortHandle {
        let inner = (self.start)(resource);
        let stream = match wait_for {
            Some(crd) => {
                let ready = established(self.client.clone(), crd, self.served.clone());
                futures::stream::once(async move {
                    ready.await;
                    inner
                })
                .flatten()
                .boxed()
            }
            None => inner,
        };
        let (stream, handle) = futures::stream::abortable(stream);
        self.running.push(stream.boxed());
        handle
    }

    fn appeared(&mut self, crd: &str) {
        if self.handles.contains_key(crd) {
            return;
        }
        let Some(resources) = self.by_crd.get(crd).cloned() else { return };
        tracing::debug!(crd, "CRD present: watching its kind");
        self.served.set(crd, Some(false));
        let handles = resources.iter().map(|resource| self.launch(resource, Some(crd.to_string()))).collect();
        self.handles.insert(crd.to_string(), handles);
    }

    fn gone(&mut self, crd: &str) {
        let Some(handles) = self.handles.remove(crd) else { return };
        tracing::debug!(crd, "CRD going: no longer watching its kind");
        handles.iter().for_each(AbortHandle::abort);
        self.served.set(crd, None);
        for resource in self.by_crd.get(crd).cloned().unwrap_or_default() {
            (self.stop)(&resource);
        }
    }

    fn on_event(&mut self, event: Event<PartialObjectMeta<CustomResourceDefinition>>) {
        match event {
            Event::Init => self.seen_in_listing.clear(),
            Event::InitApply(crd) | Event::Apply(crd) => {
                let name = crd.metadata.name.clone().unwrap_or_default();
                self.seen_in_listing.insert(name.clone());
                if crd.metadata.deletion_timestamp.is_some() {
                    self.gone(&name);
                } else {
                    self.appeared(&name);
                }
            }
            Event::Delete(crd) => self.gone(&crd.metadata.name.clone().unwrap_or_default()),
            Event::InitDone => {
                let vanished: Vec<String> =
                    self.handles.keys().filter(|name| !self.seen_in_listing.contains(*name)).cloned().collect();
                for name in vanished {
                    self.gone(&name);
                }
                self.served.mark_synced();
            }
        }
    }
}

/// Runs `start(kind)`'s stream for each of `kinds` while the API server serves it, and calls
/// `stop(kind)` when a CRD kind stops being served. The returned stream yields the items of
/// every running stream; it drives everything, so it must be polled.
pub fn while_served<T, Start, Stop>(
    client: &Client,
    kinds: &[ApiResource],
    start: Start,
    stop: Stop,
) -> (ServedKinds, impl Stream<Item = T> + Send + 'static + use<T, Start, Stop>)
where
    T: Send + 'static,
    Start: FnMut(&ApiResource) -> BoxStream<'static, T> + Send + 'static,
    Stop: FnMut(&ApiResource) + Send + 'static,
{
    let served = ServedKinds::default();
    let mut driver = Driver {
        client: client.clone(),
        by_crd: BTreeMap::new(),
        start,
        stop,
        running: SelectAll::new(),
        handles: BTreeMap::new(),
        seen_in_listing: BTreeSet::new(),
        served: served.clone(),
    };
    for resource in kinds {
        match crd_name(resource) {
            Some(crd) => driver.by_crd.entry(crd).or_default().push(resource.clone()),
            None => {
                // Never aborted: the handle is dropped, the stream runs as long as the driver.
                let _ = driver.launch(resource, None);
            }
        }
    }
    // Metadata only: CRD bodies (Istio's are large) are never needed here.
    let crds: Api<PartialObjectMeta<CustomResourceDefinition>> = Api::all(client.clone());
    let crd_events = watch(crds, watcher::Config::default()).default_backoff().boxed();
    let stream = futures::stream::unfold((driver, crd_events), |(mut driver, mut crd_events)| async move {
        loop {
            tokio::select! {
                Some(item) = driver.running.next(), if !driver.running.is_empty() => {
                    return Some((item, (driver, crd_events)));
                }
                event = crd_events.next() => match event {
                    Some(Ok(event)) => driver.on_event(event),
                    // The watcher backs off and resumes by itself.
                    Some(Err(error)) => tracing::debug!("CRD watch: {error}"),
                    None => return None,
                },
            }
        }
    });
    (served, stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_kinds_need_no_crd_and_custom_kinds_name_theirs() {
        let deployment = ApiResource::erase::<k8s_openapi::api::apps::v1::Deployment>(&());
        assert_eq!(crd_name(&deployment), None);
        let policy = ApiResource::erase::<mesh_crds::istio::AuthorizationPolicy>(&());
        assert_eq!(crd_name(&policy).as_deref(), Some("authorizationpolicies.security.istio.io"));
        let route = ApiResource::erase::<gateway_api::apis::standard::httproutes::HttpRoute>(&());
        assert_eq!(crd_name(&route).as_deref(), Some("httproutes.gateway.networking.k8s.io"));
    }

    #[test]
    fn a_crd_kind_is_unknown_until_listed_then_served_only_while_established() {
        let served = ServedKinds::default();
        let policy = ApiResource::erase::<mesh_crds::istio::AuthorizationPolicy>(&());
        let secret = ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&());
        assert_eq!(served.served(&secret), Some(true));
        assert_eq!(served.served(&policy), None);
        served.mark_synced();
        assert_eq!(served.served(&policy), Some(false));
        // Present but not Established yet: not known, so callers still ask.
        served.set("authorizationpolicies.security.istio.io", Some(false));
        assert_eq!(served.served(&policy), None);
        served.set("authorizationpolicies.security.istio.io", Some(true));
        assert_eq!(served.served(&policy), Some(true));
        served.set("authorizationpolicies.security.istio.io", None);
        assert_eq!(served.served(&policy), Some(false));
    }
}
