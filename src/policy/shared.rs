//! State that outlives one snapshot: rate-limit windows, in-flight counters, circuit breakers and
//! Redis connections. A reload compiles a new snapshot; every stateful part whose settings did
//! not change is handed the same object again (looked up by a key that spells its settings), so
//! an unchanged limit keeps counting across a reload and a changed one starts fresh. Entries are
//! held weakly: state no snapshot uses any more is dropped with the last snapshot that used it.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

type Entry = Weak<dyn Any + Send + Sync>;

static REGISTRY: LazyLock<Mutex<HashMap<String, Entry>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The object registered under `key`, or a new one made by `make` (config compile time only).
pub fn shared<T: Any + Send + Sync>(key: String, make: impl FnOnce() -> T) -> Arc<T> {
    match shared_try(key, || Ok::<T, std::convert::Infallible>(make())) {
        Ok(t) => t,
        Err(never) => match never {},
    }
}

/// Like `shared`, for state whose making can fail (nothing is registered then).
pub fn shared_try<T: Any + Send + Sync, E>(
    key: String,
    make: impl FnOnce() -> Result<T, E>,
) -> Result<Arc<T>, E> {
    let mut map = match REGISTRY.lock() {
        Ok(m) => m,
        Err(poisoned) => poisoned.into_inner(),
    };
    map.retain(|_, w| w.strong_count() > 0);
    if let Some(existing) = map.get(&key).and_then(Weak::upgrade) {
        if let Ok(t) = existing.downcast::<T>() {
            return Ok(t);
        }
    }
    let made = Arc::new(make()?);
    let erased: Arc<dyn Any + Send + Sync> = made.clone();
    map.insert(key, Arc::downgrade(&erased));
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_same_object_while_alive() {
        let a = shared("test:a".into(), || 1u32);
        let b = shared("test:a".into(), || 2u32);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(*b, 1);
        let c = shared("test:b".into(), || 3u32);
        assert_eq!(*c, 3);
        drop((a, b));
        let d = shared("test:a".into(), || 4u32);
        assert_eq!(*d, 4, "dropped state is made anew");
        let e: Result<Arc<u32>, &str> = shared_try("test:c".into(), || Err("no"));
        assert_eq!(e.err(), Some("no"));
    }
}
