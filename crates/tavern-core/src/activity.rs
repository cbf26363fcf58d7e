//! Open connections to each world, as the proxy counts them: every open
//! WebSocket (a Foundry tab) holds a guard; the reconciler reads the counts
//! with each observation. A secondary activity signal beside Foundry's own
//! count of players.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tavern_types::Slug;

/// The counts, shared between the proxy and the reconciler. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Activity(Arc<Mutex<HashMap<Slug, u32>>>);

impl Activity {
    /// Counts one more open socket to `slug` until the guard is dropped.
    pub fn socket_opened(&self, slug: &Slug) -> SocketGuard {
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(slug.clone())
            .or_default() += 1;
        SocketGuard {
            activity: self.clone(),
            slug: slug.clone(),
        }
    }

    /// Open sockets to `slug` now.
    pub fn sockets(&self, slug: &Slug) -> u32 {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(slug)
            .copied()
            .unwrap_or(0)
    }
}

/// One open socket; dropping it closes the count.
#[derive(Debug)]
pub struct SocketGuard {
    activity: Activity,
    slug: Slug,
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let mut counts = self.activity.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.slug) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.slug);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_open_sockets() {
        let a = Activity::default();
        let w: Slug = "w".parse().unwrap();
        let (g1, g2) = (a.socket_opened(&w), a.socket_opened(&w));
        assert_eq!(a.sockets(&w), 2);
        drop(g1);
        assert_eq!(a.sockets(&w), 1);
        drop(g2);
        assert_eq!(a.sockets(&w), 0);
        assert_eq!(a.sockets(&"other".parse().unwrap()), 0);
    }
}
