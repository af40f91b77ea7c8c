//! `OffsetTracker`: how far each partition may be committed when its records finish out of order.
//!
//! Records of a partition are started in offset order but finish in any order (workers race).
//! The commit position of a partition is the offset of its oldest unfinished record, or one past
//! the newest record when none is unfinished: committing it can never skip a record whose work
//! is not done (at least once). A partition that is revoked is forgotten, and records started
//! before the revocation cannot move the position of a later assignment of it (each assignment
//! is a new *generation*).
//!
//! It must never know what a record is: no Kafka client, no chunks. Pure bookkeeping, O(log n).

use std::collections::{BTreeMap, BTreeSet};

/// Proof that a record was started; hand it back to [`OffsetTracker::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket<P> {
    pub partition: P,
    pub offset: i64,
    /// The assignment the record belongs to.
    generation: u64,
}

#[derive(Debug)]
struct PartitionState {
    generation: u64,
    /// Started and not finished.
    unfinished: BTreeSet<i64>,
    /// The newest offset started.
    newest: i64,
    /// The last position handed out (at first, the first offset taken), so it only ever moves
    /// forward.
    position: i64,
}

impl PartitionState {
    fn position(&self) -> i64 {
        self.unfinished.first().copied().unwrap_or(self.newest + 1)
    }
}

/// In-order commit positions for many partitions `P`.
#[derive(Debug)]
pub struct OffsetTracker<P> {
    partitions: BTreeMap<P, PartitionState>,
    next_generation: u64,
}

impl<P> Default for OffsetTracker<P> {
    fn default() -> Self {
        OffsetTracker {
            partitions: BTreeMap::new(),
            next_generation: 0,
        }
    }
}

impl<P: Ord + Clone> OffsetTracker<P> {
    pub fn new() -> Self {
        Self::default()
    }

    /// A record of `partition` was taken. Offsets of one partition must be started in increasing
    /// order (as a consumer receives them); a record at or below one already started (a
    /// redelivery after a seek) is tracked all the same.
    pub fn start(&mut self, partition: P, offset: i64) -> Ticket<P> {
        let generation = match self.partitions.get_mut(&partition) {
            Some(state) => {
                state.unfinished.insert(offset);
                state.newest = state.newest.max(offset);
                state.generation
            }
            None => {
                let generation = self.new_generation();
                self.partitions.insert(
                    partition.clone(),
                    PartitionState {
                        generation,
                        unfinished: BTreeSet::from([offset]),
                        newest: offset,
                        // Nothing before the first record taken is ours to commit.
                        position: offset,
                    },
                );
                generation
            }
        };
        Ticket {
            partition,
            offset,
            generation,
        }
    }

    /// The record's work is done. Returns the partition's new commit position when it moved;
    /// `None` when it did not, or when the record belongs to an assignment since revoked.
    pub fn finish(&mut self, ticket: &Ticket<P>) -> Option<i64> {
        let state = self.partitions.get_mut(&ticket.partition)?;
        if state.generation != ticket.generation || !state.unfinished.remove(&ticket.offset) {
            return None;
        }
        let position = state.position();
        if state.position >= position {
            return None;
        }
        state.position = position;
        Some(position)
    }

    /// What may be committed for `partition` now, if it is tracked.
    pub fn position(&self, partition: &P) -> Option<i64> {
        self.partitions.get(partition).map(|s| s.position)
    }

    /// The partition was revoked: forget it. Its unfinished records can no longer move any
    /// position, even if it is assigned again.
    pub fn revoke(&mut self, partition: &P) {
        self.partitions.remove(partition);
    }

    /// Records started and not finished, over all partitions.
    pub fn unfinished(&self) -> usize {
        self.partitions.values().map(|s| s.unfinished.len()).sum()
    }

    /// The positions handed out so far, by partition: what may be committed now.
    pub fn positions(&self) -> Vec<(P, i64)> {
        self.partitions
            .iter()
            .map(|(p, s)| (p.clone(), s.position))
            .collect()
    }

    fn new_generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_position_waits_for_the_oldest_unfinished_record() {
        let mut t = OffsetTracker::new();
        let a = t.start(0, 10);
        let b = t.start(0, 11);
        let c = t.start(0, 12);
        assert_eq!(t.finish(&c), None, "10 and 11 are still running");
        assert_eq!(t.finish(&b), None);
        assert_eq!(t.finish(&a), Some(13), "everything up to 12 is done");
        assert_eq!(t.unfinished(), 0);
        assert_eq!(t.positions(), vec![(0, 13)]);
    }

    #[test]
    fn the_position_moves_in_steps_as_the_front_finishes() {
        let mut t = OffsetTracker::new();
        let tickets: Vec<_> = (0..5).map(|o| t.start("p", o)).collect();
        assert_eq!(t.finish(&tickets[0]), Some(1));
        assert_eq!(t.finish(&tickets[2]), None);
        assert_eq!(t.finish(&tickets[1]), Some(3));
        assert_eq!(t.finish(&tickets[4]), None);
        assert_eq!(t.finish(&tickets[3]), Some(5));
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = OffsetTracker::new();
        let a0 = t.start(0, 0);
        let b0 = t.start(1, 100);
        let _a1 = t.start(0, 1);
        assert_eq!(t.finish(&b0), Some(101));
        assert_eq!(t.finish(&a0), Some(1));
        assert_eq!(t.unfinished(), 1);
        assert_eq!(t.positions(), vec![(0, 1), (1, 101)]);
        assert_eq!((t.position(&1), t.position(&2)), (Some(101), None));
    }

    #[test]
    fn a_ticket_finishes_once() {
        let mut t = OffsetTracker::new();
        let a = t.start(0, 0);
        assert_eq!(t.finish(&a), Some(1));
        assert_eq!(t.finish(&a), None);
    }

    #[test]
    fn records_of_a_revoked_assignment_cannot_move_a_later_one() {
        let mut t = OffsetTracker::new();
        let old = t.start(0, 5);
        t.revoke(&0);
        assert_eq!(t.finish(&old), None, "revoked: not stored");
        // Assigned again: the group redelivers from the committed offset.
        let again = t.start(0, 5);
        let next = t.start(0, 6);
        assert_eq!(
            t.finish(&old),
            None,
            "the old ticket is of another generation"
        );
        assert_eq!(t.finish(&next), None, "5 is unfinished in this generation");
        assert_eq!(t.finish(&again), Some(7));
    }

    #[test]
    fn the_position_never_moves_back_on_a_redelivery() {
        let mut t = OffsetTracker::new();
        let a = t.start(0, 7);
        assert_eq!(t.finish(&a), Some(8));
        // The same record again (a seek back): finishing it must not report 8 twice or less.
        let again = t.start(0, 7);
        assert_eq!(t.finish(&again), None);
        let b = t.start(0, 8);
        assert_eq!(t.finish(&b), Some(9));
    }
}
