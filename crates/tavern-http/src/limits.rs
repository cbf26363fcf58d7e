//! Login rate limits: per username and per client address, so that neither
//! guessing one account's password nor spraying many accounts from one
//! address gets far. Keyed GCRA limiters from `governor`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Attempts allowed per minute (and as a burst).
#[derive(Clone, Debug)]
pub struct LoginLimits {
    pub per_user_per_minute: NonZeroU32,
    pub per_address_per_minute: NonZeroU32,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_user_per_minute: NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN),
            per_address_per_minute: NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN),
        }
    }
}

#[derive(Clone)]
pub(crate) struct LoginLimiter {
    users: Arc<DefaultKeyedRateLimiter<String>>,
    addresses: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

/// Beyond this many remembered keys, forget the ones that recovered.
const RETAIN_ABOVE: usize = 10_000;

impl LoginLimiter {
    pub(crate) fn new(limits: &LoginLimits) -> Self {
        Self {
            users: Arc::new(RateLimiter::keyed(Quota::per_minute(
                limits.per_user_per_minute,
            ))),
            addresses: Arc::new(RateLimiter::keyed(Quota::per_minute(
                limits.per_address_per_minute,
            ))),
        }
    }

    /// True when this attempt may go ahead. Both budgets are spent.
    pub(crate) fn allow(&self, username: &str, addr: Option<IpAddr>) -> bool {
        for l in [self.users.len(), self.addresses.len()] {
            if l > RETAIN_ABOVE {
                self.users.retain_recent();
                self.addresses.retain_recent();
            }
        }
        let user_ok = self.users.check_key(&username.to_ascii_lowercase()).is_ok();
        let addr_ok = addr.is_none_or(|a| self.addresses.check_key(&a).is_ok());
        user_ok && addr_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_user_and_per_address() {
        let l = LoginLimiter::new(&LoginLimits {
            per_user_per_minute: NonZeroU32::new(2).unwrap(),
            per_address_per_minute: NonZeroU32::new(3).unwrap(),
        });
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(l.allow("alice", Some(a)));
        assert!(l.allow("Alice", Some(b)));
        assert!(!l.allow("alice", Some(b)), "third try for alice");
        assert!(l.allow("bob", Some(a)));
        assert!(l.allow("dave", Some(a)));
        assert!(!l.allow("carol", Some(a)), "fourth try from a");
        assert!(l.allow("carol", Some(b)));
    }
}
