//! Operator metrics in the Prometheus text format.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the controller.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Reconciles that ended well.
    pub reconciles_ok: AtomicU64,
    /// Reconciles that ended in an error.
    pub reconciles_error: AtomicU64,
    /// Total reconcile time in microseconds.
    pub reconcile_micros: AtomicU64,
    /// Write requests sent to the API server by reconciles.
    pub writes: AtomicU64,
}

impl Metrics {
    /// Records one reconcile.
    pub fn record(&self, ok: bool, elapsed: std::time::Duration, writes: u64) {
        let counter = if ok { &self.reconciles_ok } else { &self.reconciles_error };
        counter.fetch_add(1, Ordering::Relaxed);
        self.reconcile_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        self.writes.fetch_add(writes, Ordering::Relaxed);
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let ok = self.reconciles_ok.load(Ordering::Relaxed);
        let err = self.reconciles_error.load(Ordering::Relaxed);
        let secs = self.reconcile_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let writes = self.writes.load(Ordering::Relaxed);
        format!(
            "# HELP meshoperator_reconciles_total Reconciles by result.\n# TYPE meshoperator_reconciles_total counter\n\
             meshoperator_reconciles_total{{controller=\"meshinstallation\",result=\"ok\"}} {ok}\n\
             meshoperator_reconciles_total{{controller=\"meshinstallation\",result=\"error\"}} {err}\n\
             # HELP meshoperator_reconcile_duration_seconds_sum Time spent reconciling.\n# TYPE meshoperator_reconcile_duration_seconds_sum counter\n\
             meshoperator_reconcile_duration_seconds_sum{{controller=\"meshinstallation\"}} {secs}\n\
             # HELP meshoperator_api_writes_total Write requests sent to the API server.\n# TYPE meshoperator_api_writes_total counter\n\
             meshoperator_api_writes_total {writes}\n"
        )
    }
}
