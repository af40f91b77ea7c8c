//! Readiness: is this member doing its job? `/health` answers from here.
//!
//! Ready means all three: the consumer group is joined (an assignment was received — an empty
//! one counts, a member with no partitions is still a member), the upstream answered (the
//! start-up probe reached it, and the last real call got an HTTP answer of any status), and the
//! worker pool is alive (no chunk was abandoned unanswered outside a drain, which only a dead
//! queue or manager causes). Each condition is one atomic flag, written where it is learnt: the
//! group by the rebalance callbacks, the upstream by the chunk tasks, the pool by the consumer.
//!
//! It must never decide anything itself (no timers, no probing): it reports what the service
//! last saw.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

/// What the service last saw of its group and its upstream. Starts not ready.
#[derive(Debug, Default)]
pub struct Health {
    /// Set by an assignment; cleared when the member loses its group (a lost assignment, a
    /// failed rebalance) or leaves it (drain).
    group_joined: AtomicBool,
    /// Set when the upstream answers (probe, or any HTTP status); cleared by a transport failure
    /// (no connection, no answer in time).
    upstream_answered: AtomicBool,
    /// Set once a chunk was abandoned outside a drain: the pool no longer answers, and only a
    /// restart brings it back. Never cleared.
    pool_failed: AtomicBool,
}

/// What happened to this member's place in the consumer group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupEvent {
    /// An assignment, even an empty one: the member is in the group.
    Assigned,
    /// Partitions were revoked. `lost`: the member was thrown out of the group (session or poll
    /// timeout) and must join again; otherwise it is a rebalance and it stays a member, with
    /// whatever the next assignment brings (possibly nothing).
    Revoked { lost: bool },
    /// The rebalance failed: no assignment holds until the next one.
    RebalanceFailed,
    /// The member stopped consuming and leaves the group (drain).
    Left,
}

/// `/health`'s body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// Both conditions: what a readiness probe looks at (also the status, 200 or 503).
    pub ready: bool,
    /// Said separately so that a 503 tells which condition is missing.
    pub group_joined: bool,
    pub upstream_answered: bool,
    pub pool_alive: bool,
}

impl Health {
    pub fn group_event(&self, event: GroupEvent) {
        let joined = match event {
            GroupEvent::Assigned => true,
            GroupEvent::Revoked { lost: false } => return,
            GroupEvent::Revoked { lost: true } | GroupEvent::RebalanceFailed | GroupEvent::Left => {
                false
            }
        };
        self.group_joined.store(joined, Ordering::Relaxed);
    }

    /// Whether the upstream answered, from the probe or a real call. Written only on a change,
    /// so that the chunks' calls do not all write one cache line.
    pub fn upstream_answered(&self, answered: bool) {
        if self.upstream_answered.load(Ordering::Relaxed) != answered {
            self.upstream_answered.store(answered, Ordering::Relaxed);
        }
    }

    /// The pool abandoned a chunk while the service was not draining: it is not doing its job,
    /// for good.
    pub fn pool_failed(&self) {
        self.pool_failed.store(true, Ordering::Relaxed);
    }

    pub fn readiness(&self) -> Readiness {
        let group_joined = self.group_joined.load(Ordering::Relaxed);
        let upstream_answered = self.upstream_answered.load(Ordering::Relaxed);
        let pool_alive = !self.pool_failed.load(Ordering::Relaxed);
        Readiness {
            ready: group_joined && upstream_answered && pool_alive,
            group_joined,
            upstream_answered,
            pool_alive,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(h: &Health) -> (bool, bool, bool) {
        let r = h.readiness();
        (r.ready, r.group_joined, r.upstream_answered)
    }

    #[test]
    fn not_ready_until_both_the_group_and_the_upstream() {
        let h = Health::default();
        assert_eq!(state(&h), (false, false, false), "starts not ready");
        h.upstream_answered(true);
        assert_eq!(
            state(&h),
            (false, false, true),
            "the upstream alone is not enough"
        );
        h.group_event(GroupEvent::Assigned);
        assert_eq!(state(&h), (true, true, true));
        h.upstream_answered(false);
        assert_eq!(state(&h), (false, true, false), "a transport failure");
        h.upstream_answered(true);
        assert_eq!(state(&h), (true, true, true), "answered again");
    }

    #[test]
    fn a_member_that_gives_up_its_partitions_in_a_rebalance_stays_joined() {
        let h = Health::default();
        h.upstream_answered(true);
        h.group_event(GroupEvent::Assigned);
        h.group_event(GroupEvent::Revoked { lost: false });
        assert!(h.readiness().ready, "still a member, with nothing assigned");
        // The empty assignment that follows keeps it joined.
        h.group_event(GroupEvent::Assigned);
        assert!(h.readiness().ready);
    }

    #[test]
    fn a_lost_assignment_a_failed_rebalance_or_leaving_unjoins() {
        for event in [
            GroupEvent::Revoked { lost: true },
            GroupEvent::RebalanceFailed,
            GroupEvent::Left,
        ] {
            let h = Health::default();
            h.upstream_answered(true);
            h.group_event(GroupEvent::Assigned);
            h.group_event(event);
            assert_eq!(state(&h), (false, false, true), "{event:?}");
            h.group_event(GroupEvent::Assigned);
            assert!(h.readiness().ready, "joined again after {event:?}");
        }
    }

    #[test]
    fn the_body_names_each_condition() {
        let h = Health::default();
        h.upstream_answered(true);
        let body = serde_json::to_string(&h.readiness()).unwrap();
        assert_eq!(
            body,
            r#"{"ready":false,"group_joined":false,"upstream_answered":true,"pool_alive":true}"#
        );
    }

    #[test]
    fn a_failed_pool_is_not_ready_for_good() {
        let h = Health::default();
        h.upstream_answered(true);
        h.group_event(GroupEvent::Assigned);
        h.pool_failed();
        let r = h.readiness();
        assert_eq!((r.ready, r.pool_alive), (false, false));
        h.group_event(GroupEvent::Assigned);
        h.upstream_answered(true);
        assert!(!h.readiness().ready, "only a restart brings the pool back");
    }
}
