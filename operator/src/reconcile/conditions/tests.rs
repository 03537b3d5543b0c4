//! The Kubernetes condition conventions clients rely on (`kubectl wait`, dashboards, alerts on how
//! long a condition has been False): `lastTransitionTime` says when the status last changed, every
//! condition carries the generation it was computed for, and an unchanged outcome re-renders an
//! identical list, so a steady installation writes no status.

use mesh_crds::ConditionStatus;

use super::{ConditionUpdate, merge};

fn ready_waiting(message: &str) -> ConditionUpdate {
    ConditionUpdate::not_ok("Ready", "Progressing", message)
}

#[test]
fn transition_time_moves_only_when_status_changes() {
    let first = merge(&[], &[ready_waiting("waiting")], "t1", Some(1));
    assert_eq!(first[0].last_transition_time, "t1");
    let same = merge(&first, &[ready_waiting("still waiting")], "t2", Some(1));
    assert_eq!(same[0].last_transition_time, "t1");
    assert_eq!(same[0].message, "still waiting");
    let flipped = merge(&same, &[ConditionUpdate::ok("Ready", "Converged", "done")], "t3", Some(1));
    assert_eq!(flipped[0].last_transition_time, "t3");
    assert_eq!(flipped[0].status, ConditionStatus::True);
}

#[test]
fn a_new_reason_with_the_same_status_is_no_transition() {
    let waiting = merge(&[], &[ready_waiting("AppsReady: bookstore has 0/1 ready")], "t1", Some(1));
    let conflict = merge(&waiting, &[ConditionUpdate::not_ok("Ready", "Conflict", "taken")], "t2", Some(1));
    assert_eq!(conflict[0].reason, "Conflict");
    assert_eq!(conflict[0].message, "taken");
    assert_eq!(conflict[0].last_transition_time, "t1", "Ready has been False since t1");
}

#[test]
fn every_condition_carries_the_generation_it_was_computed_for() {
    let old =
        merge(&[], &[ready_waiting("waiting"), ConditionUpdate::ok("MeshReady", "Available", "up")], "t1", Some(3));
    assert!(old.iter().all(|c| c.observed_generation == Some(3)), "{old:#?}");
    // A new generation is stamped on conditions whose status did not change too.
    let new =
        merge(&old, &[ready_waiting("waiting"), ConditionUpdate::ok("MeshReady", "Available", "up")], "t2", Some(4));
    assert!(new.iter().all(|c| c.observed_generation == Some(4)), "{new:#?}");
    assert!(new.iter().all(|c| c.last_transition_time == "t1"), "{new:#?}");
}

#[test]
fn a_condition_seen_for_the_first_time_starts_now() {
    let old = merge(&[], &[ready_waiting("waiting")], "t1", Some(1));
    let new =
        merge(&old, &[ready_waiting("waiting"), ConditionUpdate::ok("IngressReady", "Available", "up")], "t2", Some(1));
    assert_eq!(new[1].type_, "IngressReady");
    assert_eq!(new[1].last_transition_time, "t2");
}

#[test]
fn the_result_is_the_updates_in_their_order_and_nothing_else() {
    let old = merge(
        &[],
        &[ConditionUpdate::ok("MeshReady", "Available", "up"), ConditionUpdate::ok("AppsReady", "Available", "up")],
        "t1",
        Some(1),
    );
    let new =
        merge(&old, &[ready_waiting("waiting"), ConditionUpdate::ok("AppsReady", "Available", "up")], "t2", Some(1));
    let types: Vec<&str> = new.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(types, ["Ready", "AppsReady"]);
}

#[test]
fn an_unchanged_outcome_renders_an_identical_list() {
    let updates = [ready_waiting("waiting"), ConditionUpdate::ok("MeshReady", "Available", "up")];
    let first = merge(&[], &updates, "t1", Some(2));
    assert_eq!(merge(&first, &updates, "t2", Some(2)), first, "nothing changed, so nothing to write");
}

#[test]
fn ok_and_not_ok_say_whether_the_condition_holds() {
    assert!(ConditionUpdate::ok("Ready", "Converged", "").is_true());
    assert!(!ConditionUpdate::not_ok("Ready", "Progressing", "").is_true());
    assert_eq!(ConditionUpdate::not_ok("Ready", "Progressing", "").status, ConditionStatus::False);
}
