//! Exit codes shared by `meshctl status`, `namespace list` and `dashboard`, so scripts can branch
//! on them (`translate` documents its own, which agree: 3 means "done, but look").

/// Everything shown is as asked: Ready, listed, forwarded until interrupted.
pub const OK: i32 = 0;
/// The cluster could not be reached or refused a request (kubeconfig, RBAC, network).
pub const ERROR: i32 = 1;
/// The command line was wrong (clap's own code).
pub const USAGE: i32 = 2;
/// Shown, but not Ready (or `--wait` timed out); or there is nothing to show (no dashboard).
pub const NOT_READY: i32 = 3;
/// The installation (or the pod to forward to) does not exist.
pub const NOT_FOUND: i32 = 4;

/// Text for `--help`.
pub const HELP: &str = "Exit codes: 0 ok/Ready; 1 cluster unreachable or request refused; 2 usage; \
3 not Ready, timed out or nothing to show; 4 not found.";
