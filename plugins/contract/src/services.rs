//! Shared services of one configuration: values the host builds once per load and every
//! plugin can reach by type, at build time ([`BuildContext::service`]) and per request
//! ([`Request::service`]). The consumers and their credentials are one; a connection pool
//! a plugin family shares would be another.
//!
//! [`BuildContext::service`]: crate::BuildContext::service
//! [`Request::service`]: crate::Request::service

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;

/// A map from type to one shared value of that type.
///
/// Held as a list searched in order: a configuration has a handful of services, and
/// comparing a few `TypeId`s costs less per request than hashing one.
#[derive(Default, Clone)]
pub struct Services {
    values: Vec<(TypeId, Arc<dyn Any + Send + Sync>)>,
}

impl Services {
    /// No services.
    pub fn new() -> Self {
        Services::default()
    }

    /// An empty set that lives for the whole process (for contexts without any).
    pub fn empty() -> &'static Services {
        static EMPTY: std::sync::OnceLock<Services> = std::sync::OnceLock::new();
        EMPTY.get_or_init(Services::new)
    }

    /// Adds `value`, replacing any value of the same type.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: Arc<T>) -> &mut Self {
        let id = TypeId::of::<T>();
        match self.values.iter_mut().find(|(t, _)| *t == id) {
            Some((_, v)) => *v = value,
            None => self.values.push((id, value)),
        }
        self
    }

    /// The value of type `T`, if there is one.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.find(TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
    }

    /// The value of type `T` as a shared pointer, to keep beyond a request.
    pub fn get_arc<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.find(TypeId::of::<T>())
            .and_then(|v| Arc::clone(v).downcast::<T>().ok())
    }

    fn find(&self, id: TypeId) -> Option<&Arc<dyn Any + Send + Sync>> {
        self.values.iter().find(|(t, _)| *t == id).map(|(_, v)| v)
    }
}

impl fmt::Debug for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Services({} values)", self.values.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_found_by_type() {
        let mut s = Services::new();
        s.insert(Arc::new(7u32)).insert(Arc::new(String::from("x")));
        assert_eq!(s.get::<u32>(), Some(&7));
        assert_eq!(s.get::<String>().map(String::as_str), Some("x"));
        assert!(s.get::<u64>().is_none());
        assert_eq!(*s.get_arc::<u32>().unwrap(), 7);
        assert!(Services::empty().get::<u32>().is_none());
        // A second value of a type replaces the first.
        s.insert(Arc::new(8u32));
        assert_eq!(s.get::<u32>(), Some(&8));
        assert_eq!(s.values.len(), 2);
    }
}
