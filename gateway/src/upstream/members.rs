//! The targets of a pool at one moment, with the balancer precomputed over them.
//!
//! A pool swaps its members whole when a target name resolves differently; a request
//! picks from the members it loaded, so it never sees a balancer built for another list.

use std::ops::Index;
use std::sync::Arc;

use super::balancer::{Balancing, LeastConnections, RoundRobin, WeightedRandom};
use super::hash_key::HashKey;
use super::ring::Ring;
use super::target::Target;
use crate::config::Balancer;

/// A pool's target list and the balancer over it.
#[derive(Debug)]
pub(crate) struct Members {
    pub(crate) targets: Vec<Arc<Target>>,
    pub(crate) balancing: Balancing,
}

impl Members {
    /// Precomputes `balancer` over `targets` (retired slots have weight 0: no share).
    pub(crate) fn new(targets: Vec<Arc<Target>>, balancer: Balancer, key: &HashKey) -> Self {
        let weights: Vec<u32> = targets.iter().map(|t| t.weight()).collect();
        let balancing = match balancer {
            Balancer::RoundRobin => Balancing::RoundRobin(RoundRobin::new(&weights)),
            Balancer::Random => Balancing::Random(WeightedRandom::new(&weights)),
            Balancer::LeastConnections => Balancing::LeastConnections(LeastConnections::default()),
            Balancer::ConsistentHash => {
                let points: Vec<_> = targets.iter().map(|t| (t.addr(), t.weight())).collect();
                Balancing::ConsistentHash(Ring::new(&points), key.clone())
            }
        };
        Members { targets, balancing }
    }
}

/// A snapshot of a pool's targets, in selection-index order. It stays valid (and
/// unchanged) while the pool's names are re-resolved; ask the pool again for the current
/// list.
#[derive(Debug, Clone)]
pub struct Targets(pub(crate) Arc<Members>);

impl Targets {
    /// The target at `index`, as an owned handle (a reference count), so it can outlive
    /// this snapshot.
    pub fn get(&self, index: usize) -> Option<Arc<Target>> {
        self.0.targets.get(index).cloned()
    }

    /// The targets, retired slots included (see [`Target::is_retired`]).
    pub fn iter(&self) -> std::slice::Iter<'_, Arc<Target>> {
        self.0.targets.iter()
    }

    /// How many slots there are, retired ones included.
    pub fn len(&self) -> usize {
        self.0.targets.len()
    }

    /// Whether the pool has no target at all.
    pub fn is_empty(&self) -> bool {
        self.0.targets.is_empty()
    }
}

impl Index<usize> for Targets {
    type Output = Arc<Target>;

    fn index(&self, index: usize) -> &Arc<Target> {
        &self.0.targets[index]
    }
}

impl<'a> IntoIterator for &'a Targets {
    type Item = &'a Arc<Target>;
    type IntoIter = std::slice::Iter<'a, Arc<Target>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
