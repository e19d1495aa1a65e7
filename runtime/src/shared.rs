//! Things made once for every route that names the same one: a Lambda function's processes and
//! credentials, a set of upstream targets and their health. Kept weakly: a thing goes when its
//! last route does.
#![cfg_attr(not(any(feature = "proxy", feature = "lambda")), allow(dead_code))]

use std::sync::{Arc, Mutex, Weak};

/// Things by what makes them the same (a key the caller builds from their settings).
pub(crate) struct Registry<T>(Mutex<Vec<(String, Weak<T>)>>);

impl<T> Registry<T> {
    /// An empty registry, for a `static`.
    pub(crate) const fn new() -> Self {
        Registry(Mutex::new(Vec::new()))
    }

    /// The live thing under `key`, or the one `make` makes, kept under it.
    pub(crate) fn get_or_make<E>(
        &self,
        key: String,
        make: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|(_, t)| t.strong_count() > 0);
        if let Some(t) = all
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, t)| t.upgrade())
        {
            return Ok(t);
        }
        let t = Arc::new(make()?);
        all.push((key, Arc::downgrade(&t)));
        Ok(t)
    }

    /// Every live thing.
    #[cfg_attr(not(feature = "proxy"), allow(dead_code))]
    pub(crate) fn live(&self) -> Vec<Arc<T>> {
        let all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.iter().filter_map(|(_, t)| t.upgrade()).collect()
    }
}
