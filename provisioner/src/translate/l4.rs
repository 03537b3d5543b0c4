//! The L4 grants of one destination (OSM's network RBAC, first on HTTP and TCP chains): which
//! callers may connect to which ports. A caller reaches port `p` only if some TrafficTarget of
//! the destination with an [`L4`] grant covering `p` lists it (`sources: []`: any identity); a
//! TrafficTarget whose L4 grant was dropped (missing TCPRoute) grants nothing here.
//! [`super::authz`] groups each rule's callers by the ports they reach ([`L4Table::classes`]).

use std::collections::{BTreeMap, BTreeSet};

use super::enforcement::Destination;
use super::resolve::{L4, OsmPrincipals, ResolvedTarget};

/// The ports an L4 grant covers for one caller.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Ports {
    Every,
    Some(BTreeSet<i32>),
}

impl Ports {
    fn union(self, other: &L4) -> Ports {
        match (self, other) {
            (Ports::Every, _) | (_, L4::Any) => Ports::Every,
            (Ports::Some(mut a), L4::Ports(b)) => {
                a.extend(b);
                Ports::Some(a)
            }
            (ports, L4::Dropped) => ports,
        }
    }

    fn is_none(&self) -> bool {
        matches!(self, Ports::Some(p) if p.is_empty())
    }
}

/// The L4 grants of one destination.
pub(crate) struct L4Table<'t> {
    grants: Vec<(&'t OsmPrincipals, &'t L4)>,
}

impl<'t> L4Table<'t> {
    pub(crate) fn new(destination: &Destination<'_>, targets: &'t [ResolvedTarget<'t>]) -> Self {
        let grants = destination
            .targets
            .iter()
            .map(|&t| (&*targets[t].principals, &targets[t].l4))
            .filter(|(_, l4)| **l4 != L4::Dropped)
            .collect();
        L4Table { grants }
    }

    /// The ports `principal` (`None`: any identity not named anywhere) may connect to.
    fn ports_of(&self, principal: Option<&str>) -> Ports {
        self.grants
            .iter()
            .filter(|(p, _)| p.is_any() || principal.is_some_and(|x| p.admits(x)))
            .fold(Ports::Some(BTreeSet::new()), |acc, (_, l4)| acc.union(l4))
    }

    fn named(&self) -> BTreeSet<&'t str> {
        self.grants.iter().flat_map(|(p, _)| p.named().map(String::as_str)).collect()
    }

    /// Callers grouped by the ports they may reach (callers reaching none are left out).
    pub(crate) fn classes(&self, principals: &OsmPrincipals) -> BTreeMap<Ports, Vec<String>> {
        let mut out: BTreeMap<Ports, Vec<String>> = BTreeMap::new();
        if principals.is_any() {
            let others = self.ports_of(None);
            for named in self.named() {
                let ports = self.ports_of(Some(named));
                if ports != others {
                    out.entry(ports).or_default().push(named.to_string());
                }
            }
            out.entry(others).or_default().push("*".to_string());
        } else {
            for named in principals.named() {
                out.entry(self.ports_of(Some(named))).or_default().push(named.clone());
            }
        }
        out.retain(|ports, _| !ports.is_none());
        out
    }
}
