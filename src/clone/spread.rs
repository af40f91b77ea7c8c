//! `Spread`: which partition of the todo topic a request goes to: the one with the fewest of
//! this run's requests unanswered.
//!
//! The services of one group share the exchange's rate by the partitions each holds
//! (docs/rate-budget.md): a member whose partitions have nothing left to do leaves its share
//! idle while another still has a backlog. Hashing keys spreads requests evenly only on
//! average; this keeps every partition's backlog within one request of the others', so every
//! member's share is used until the last requests.
//!
//! It must never hold a partition past its request's answer (the counts would drift) and knows
//! nothing of what is requested.

use std::cell::RefCell;

/// Unanswered requests per partition.
#[derive(Debug, Default)]
pub struct Spread {
    load: RefCell<Vec<usize>>,
}

/// A request's place on one partition, given back when it is dropped (answered, timed out, or
/// the run ended).
pub struct Placed<'a> {
    spread: &'a Spread,
    pub partition: i32,
}

impl Spread {
    /// Over `partitions` partitions; none (0) leaves the choice to the producer's partitioner.
    pub fn new(partitions: usize) -> Spread {
        Spread {
            load: RefCell::new(vec![0; partitions]),
        }
    }

    /// The least loaded partition (the lowest number among equals), taken for one request.
    pub fn place(&self) -> Option<Placed<'_>> {
        let mut load = self.load.borrow_mut();
        let (partition, count) = load.iter_mut().enumerate().min_by_key(|(_, n)| **n)?;
        *count += 1;
        Some(Placed {
            spread: self,
            partition: partition as i32,
        })
    }
}

impl Drop for Placed<'_> {
    fn drop(&mut self) {
        self.spread.load.borrow_mut()[self.partition as usize] -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_go_to_the_least_loaded_partition_and_come_back_when_dropped() {
        let spread = Spread::new(3);
        let placed: Vec<Placed> = (0..7).map(|_| spread.place().unwrap()).collect();
        let on = |p| placed.iter().filter(|x| x.partition == p).count();
        assert_eq!((on(0), on(1), on(2)), (3, 2, 2));
        // Partition 1's two are answered: the next two go there.
        let mut placed = placed;
        placed.retain(|x| x.partition != 1);
        assert_eq!(spread.place().unwrap().partition, 1);
        let a = spread.place().unwrap();
        let b = spread.place().unwrap();
        assert_eq!((a.partition, b.partition), (1, 1));
        drop(placed);
        assert_eq!(*spread.load.borrow(), vec![0, 2, 0]);
    }

    #[test]
    fn no_partitions_known_leaves_the_choice_to_the_producer() {
        assert!(Spread::new(0).place().is_none());
    }
}
