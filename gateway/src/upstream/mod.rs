//! Upstream pools: targets, balancing, health, timeouts. (Being written.)
