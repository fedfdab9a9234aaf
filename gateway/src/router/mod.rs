//! The compiled route table. (Being written.)
