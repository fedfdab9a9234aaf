//! Shared pieces of Pingway's benchmarks: the generated route tables used both by the
//! criterion micro-benchmarks (`benches/micro.rs`) and by the load harness
//! (`src/bin/loadbench`), so both measure the same 10,000 routes.

pub mod routes;
