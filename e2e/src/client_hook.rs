//! Kube clients whose requests a suite can watch and hold back: every request is shown to a hook
//! (method and URI) before it is sent, and its answer is handed on no sooner than the delay the
//! hook returns. The bench counts the operator's requests with it; operability holds back the
//! first LIST of one resource.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use kube::Client;

/// Sees each request; returns how long to hold its answer back (`Duration::ZERO`: not at all).
pub type Hook = Arc<dyn Fn(&http::Method, &http::Uri) -> Duration + Send + Sync>;

/// Whether a request is a watch (`?watch=true`).
pub fn is_watch(uri: &http::Uri) -> bool {
    uri.query().unwrap_or_default().contains("watch=true")
}

/// A client of `cluster` (its admin kubeconfig) whose requests go through `hook`.
pub async fn client_with_hook(cluster: &crate::TestCluster, hook: Hook) -> Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(&cluster.kubeconfig).expect("the cluster's kubeconfig reads");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("the cluster's kubeconfig is a client configuration");
    kube::client::ClientBuilder::try_from(config).expect("a client builder").with_layer(&HookLayer(hook)).build()
}

struct HookLayer(Hook);

impl<S> tower::Layer<S> for HookLayer {
    type Service = Hooked<S>;
    fn layer(&self, inner: S) -> Hooked<S> {
        Hooked { inner, hook: self.0.clone() }
    }
}

/// The service [`client_with_hook`] puts in front of the client's transport.
#[derive(Clone)]
pub struct Hooked<S> {
    inner: S,
    hook: Hook,
}

impl<S, B> tower::Service<http::Request<B>> for Hooked<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let delay = (self.hook)(request.method(), request.uri());
        let response = self.inner.call(request);
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            response.await
        })
    }
}
