//! Sign-in rate limits, shaped so that guessing is slow and nobody can lock
//! another person out: every client address has a budget of attempts
//! (a keyed GCRA limiter from `governor`), and each (username, address)
//! pair waits longer after each wrong password, until it signs in. There is
//! deliberately no limit per username alone: anyone could spend it and
//! keep the account's owner out. IPv6 clients are counted by their /64.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tavern_types::client_key;

/// How sign-in attempts are limited.
#[derive(Clone, Debug)]
pub struct LoginLimits {
    /// Attempts per minute (and as a burst) from one client address.
    pub per_address_per_minute: NonZeroU32,
    /// Wrong passwords for one username from one address before delays.
    pub free_failures: u32,
    /// The first delay; each further failure doubles it.
    pub first_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_address_per_minute: NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN),
            free_failures: 3,
            first_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(15 * 60),
        }
    }
}

/// Wrong passwords for one username from one address.
#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
}

#[derive(Clone)]
pub(crate) struct LoginLimiter {
    limits: LoginLimits,
    addresses: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    failures: Arc<Mutex<HashMap<(String, IpAddr), Failures>>>,
}

/// Beyond this many remembered keys, forget the ones that recovered.
const RETAIN_ABOVE: usize = 10_000;

/// The address a client is counted by ([`client_key`]); no address (a
/// caller in-process) counts as one client.
fn client_of(addr: Option<IpAddr>) -> IpAddr {
    addr.map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), client_key)
}

impl LoginLimiter {
    pub(crate) fn new(limits: &LoginLimits) -> Self {
        Self {
            limits: limits.clone(),
            addresses: Arc::new(RateLimiter::keyed(Quota::per_minute(
                limits.per_address_per_minute,
            ))),
            failures: Arc::default(),
        }
    }

    /// How long `failures` wrong passwords make the next attempt wait,
    /// counted from the last one.
    fn delay(&self, failures: u32) -> Duration {
        let Some(over) = failures.checked_sub(self.limits.free_failures) else {
            return Duration::ZERO;
        };
        self.limits
            .first_delay
            .saturating_mul(2u32.saturating_pow(over.min(31)))
            .min(self.limits.max_delay)
    }

    /// `Ok` when this attempt may go ahead (it spends the address's
    /// budget); else how long to wait.
    pub(crate) fn check(&self, username: &str, addr: Option<IpAddr>) -> Result<(), Duration> {
        let client = client_of(addr);
        let now = Instant::now();
        {
            let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(f) = failures.get(&(username.to_ascii_lowercase(), client)) {
                let until = f.last + self.delay(f.count);
                if until > now {
                    return Err(until - now);
                }
            }
        }
        if self.addresses.len() > RETAIN_ABOVE {
            self.addresses.retain_recent();
        }
        self.addresses
            .check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Records how an attempt that [`Self::check`] let through ended: a
    /// wrong password makes the next wait longer; signing in clears it.
    pub(crate) fn record(&self, username: &str, addr: Option<IpAddr>, signed_in: bool) {
        let key = (username.to_ascii_lowercase(), client_of(addr));
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if signed_in {
            failures.remove(&key);
            return;
        }
        if failures.len() > RETAIN_ABOVE {
            // Forget the pairs whose wait is long over.
            let forget_after = self.limits.max_delay * 2;
            failures.retain(|_, f| now.duration_since(f.last) < forget_after);
        }
        let f = failures.entry(key).or_insert(Failures {
            count: 0,
            last: now,
        });
        f.count = f.count.saturating_add(1);
        f.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limiter(per_address: u32) -> LoginLimiter {
        LoginLimiter::new(&LoginLimits {
            per_address_per_minute: NonZeroU32::new(per_address).unwrap(),
            free_failures: 2,
            first_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(600),
        })
    }

    #[test]
    fn wrong_passwords_slow_one_address_down_and_nobody_else() {
        let l = limiter(100);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(l.check("alice", Some(a)).is_ok());
        l.record("alice", Some(a), false);
        // Two free failures (names are compared without case), then the
        // next try waits.
        assert!(l.check("Alice", Some(a)).is_ok());
        l.record("Alice", Some(a), false);
        let wait = l.check("alice", Some(a)).unwrap_err();
        assert!(wait > Duration::from_secs(50), "{wait:?}");
        // The attacker's failures do not keep Alice out from her address,
        // nor Bob out from the attacker's.
        assert!(l.check("alice", Some(b)).is_ok());
        l.record("alice", Some(b), true);
        assert!(l.check("bob", Some(a)).is_ok());
    }

    #[test]
    fn signing_in_clears_the_delay() {
        let l = limiter(100);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8::ffff".parse().unwrap();
        for _ in 0..2 {
            l.record("carol", Some(a), false);
        }
        l.record("carol", Some(a), true);
        l.record("carol", Some(same_64), false);
        assert!(
            l.check("carol", Some(a)).is_ok(),
            "one failure after a sign-in"
        );
        l.record("carol", Some(a), false);
        l.record("carol", Some(a), false);
        assert!(
            l.check("carol", Some(same_64)).is_err(),
            "an IPv6 client is counted by its /64"
        );
    }

    #[test]
    fn one_address_has_a_budget_of_attempts() {
        let l = limiter(3);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        for name in ["a", "b", "c"] {
            assert!(l.check(name, Some(a)).is_ok());
        }
        assert!(l.check("d", Some(a)).is_err(), "fourth try from a");
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(
            l.check("e", Some(mapped)).is_err(),
            "the same client in IPv6 form"
        );
        assert!(l.check("e", Some("127.0.0.2".parse().unwrap())).is_ok());
    }

    proptest! {
        /// Delays never shrink as failures grow and never pass the most.
        #[test]
        fn delays_grow_to_a_ceiling(a in 0u32..200, b in 0u32..200) {
            let l = limiter(10);
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(l.delay(lo) <= l.delay(hi));
            prop_assert!(l.delay(hi) <= Duration::from_secs(600));
        }
    }
}
