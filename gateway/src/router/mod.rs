//! The compiled route table. (Being written.)

mod normalize;

pub use self::normalize::normalize_path;
