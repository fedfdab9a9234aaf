//! How plugin configurations are read: a position-keeping tree ([`ConfigNode`]), an
//! error-collecting deserializer ([`from_node`]) and the problems it reports
//! ([`Diagnostic`]).

mod de;
mod diagnostic;
mod duration;
mod entry;
mod node;

pub use de::{from_node, lenient_default, lenient_vec, DeError};
pub use diagnostic::{join_path, Diagnostic, Location};
pub use duration::parse_duration;
pub use entry::PluginConfig;
pub use node::{
    index_path, parse_path, ConfigNode, MapKey, NodeValue, PathSegment, Resolved, Scalar,
};
