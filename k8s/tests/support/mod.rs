//! Test support: the stand-in API server and object builders.

pub mod apiserver;
pub mod objects;
pub mod processes;
