//! `Queue`: a generic, bounded FIFO actor — the original's `Queue` process.
//!
//! It holds items for whoever takes them: `add_to_queue` appends (or answers [`QueueFull`] and
//! hands the item back, so a refusal never loses it), `get_first_element` pops the oldest item
//! if there is one, and [`NextElement`] lets a consumer wait for the next item without polling.
//!
//! It must never know what it holds: no chunks, no Kafka, no workers. Everything is O(1).

use std::collections::VecDeque;
use std::marker::PhantomData;

use actix::prelude::*;
use tokio::sync::oneshot;

/// Bound used by `Default` (the system-service constructor); real services set their own.
pub const DEFAULT_BOUND: usize = 10_000;

pub struct Queue<T> {
    /// Waiting items, oldest first.
    items: VecDeque<T>,
    /// Most items `add_to_queue` accepts; requeued items may exceed it (see [`Requeue`]).
    bound: usize,
    /// Consumers parked in [`NextElement`], oldest first; an item goes to them before `items`.
    waiters: VecDeque<oneshot::Sender<T>>,
}

impl<T> Queue<T> {
    pub fn new(bound: usize) -> Self {
        assert!(bound > 0, "a queue bound must be at least 1");
        Queue {
            items: VecDeque::new(),
            bound,
            waiters: VecDeque::new(),
        }
    }

    /// Hands `item` to the oldest live waiter, or keeps it (at the front if `front`).
    fn deliver(&mut self, mut item: T, front: bool) {
        while let Some(waiter) = self.waiters.pop_front() {
            // A waiter whose caller went away gives the item back: try the next one.
            match waiter.send(item) {
                Ok(()) => return,
                Err(back) => item = back,
            }
        }
        if front {
            self.items.push_front(item);
        } else {
            self.items.push_back(item);
        }
    }
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue::new(DEFAULT_BOUND)
    }
}

impl<T: Unpin + 'static> Actor for Queue<T> {
    type Context = Context<Self>;
}

impl<T: Unpin + 'static> Supervised for Queue<T> {}

/// Reachable as a named process: `Queue::<T>::from_registry()`.
impl<T: Unpin + 'static> SystemService for Queue<T> {}

/// The queue already holds its bound; the item comes back to the caller.
#[derive(Debug, thiserror::Error)]
#[error("queue full ({bound} items waiting)")]
pub struct QueueFull<T> {
    pub bound: usize,
    pub item: T,
}

/// The queue stopped before an item came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the queue stopped")]
pub struct QueueClosed;

/// `Queue.add_to_queue(item)`: append, or refuse with [`QueueFull`] at the bound.
pub struct AddToQueue<T>(pub T);

impl<T: 'static> Message for AddToQueue<T> {
    type Result = Result<(), QueueFull<T>>;
}

impl<T: Unpin + 'static> Handler<AddToQueue<T>> for Queue<T> {
    type Result = Result<(), QueueFull<T>>;

    fn handle(&mut self, AddToQueue(item): AddToQueue<T>, _: &mut Context<Self>) -> Self::Result {
        if self.items.len() >= self.bound {
            return Err(QueueFull {
                bound: self.bound,
                item,
            });
        }
        self.deliver(item, false);
        Ok(())
    }
}

/// `Queue.get_first_element()`: the oldest item, or `None` when empty. Never waits.
pub struct GetFirstElement<T>(PhantomData<fn() -> T>);

impl<T> GetFirstElement<T> {
    pub fn new() -> Self {
        GetFirstElement(PhantomData)
    }
}

impl<T> Default for GetFirstElement<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: 'static> Message for GetFirstElement<T> {
    type Result = Option<T>;
}

impl<T: Unpin + 'static> Handler<GetFirstElement<T>> for Queue<T> {
    type Result = Option<T>;

    fn handle(&mut self, _: GetFirstElement<T>, _: &mut Context<Self>) -> Option<T> {
        self.items.pop_front()
    }
}

/// Parks a consumer until the next item: the item is sent on the enclosed channel at once if one
/// is queued, otherwise when one arrives. Waiters are served first come, first served.
///
/// The caller holds the receiving end, so a caller that gives up (drops the receiver) is skipped
/// and the item goes to the next waiter or stays queued: nothing is lost. Use [`next_element`].
pub struct NextElement<T>(pub oneshot::Sender<T>);

impl<T: 'static> Message for NextElement<T> {
    type Result = ();
}

impl<T: Unpin + 'static> Handler<NextElement<T>> for Queue<T> {
    type Result = ();

    fn handle(&mut self, NextElement(waiter): NextElement<T>, _: &mut Context<Self>) {
        match self.items.pop_front() {
            Some(item) => {
                if let Err(item) = waiter.send(item) {
                    self.items.push_front(item);
                }
            }
            None => self.waiters.push_back(waiter),
        }
    }
}

/// Waits for the next item of `queue`, without polling. Dropping the future loses no item.
pub async fn next_element<T: Unpin + Send + 'static>(
    queue: &Addr<Queue<T>>,
) -> Result<T, QueueClosed> {
    let (tx, rx) = oneshot::channel();
    // do_send ignores the mailbox capacity; if the queue is gone, `tx` is dropped and so:
    queue.do_send(NextElement(tx));
    rx.await.map_err(|_| QueueClosed)
}

/// Puts an item back at the front, past the bound: for an item that was taken and must be
/// retried. Refusing it would lose it; the overshoot is bounded by the number of takers.
pub struct Requeue<T>(pub T);

impl<T: 'static> Message for Requeue<T> {
    type Result = ();
}

impl<T: Unpin + 'static> Handler<Requeue<T>> for Queue<T> {
    type Result = ();

    fn handle(&mut self, Requeue(item): Requeue<T>, _: &mut Context<Self>) {
        self.deliver(item, true);
    }
}

/// Removes every waiting item that `predicate` picks, and hands them back in queue order: for
/// work whose caller withdrew it before it started. O(n) in the waiting items, so meant for rare
/// events, not for every item.
pub struct RemoveWhere<T>(pub Box<dyn FnMut(&T) -> bool + Send>);

impl<T: 'static> Message for RemoveWhere<T> {
    type Result = Vec<T>;
}

impl<T: Unpin + 'static> Handler<RemoveWhere<T>> for Queue<T> {
    type Result = MessageResult<RemoveWhere<T>>;

    fn handle(
        &mut self,
        RemoveWhere(mut pick): RemoveWhere<T>,
        _: &mut Context<Self>,
    ) -> Self::Result {
        let (removed, kept): (VecDeque<T>, VecDeque<T>) = std::mem::take(&mut self.items)
            .into_iter()
            .partition(|item| pick(item));
        self.items = kept;
        MessageResult(removed.into())
    }
}

/// Items waiting now.
pub struct Len<T>(PhantomData<fn() -> T>);

impl<T> Len<T> {
    pub fn new() -> Self {
        Len(PhantomData)
    }
}

impl<T> Default for Len<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: 'static> Message for Len<T> {
    type Result = usize;
}

impl<T: Unpin + 'static> Handler<Len<T>> for Queue<T> {
    type Result = usize;

    fn handle(&mut self, _: Len<T>, _: &mut Context<Self>) -> usize {
        self.items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn fifo_order_and_empty() {
        let q = Queue::<u32>::new(10).start();
        for i in 0..5 {
            q.send(AddToQueue(i)).await.unwrap().unwrap();
        }
        for i in 0..5 {
            assert_eq!(q.send(GetFirstElement::new()).await.unwrap(), Some(i));
        }
        assert_eq!(q.send(GetFirstElement::new()).await.unwrap(), None);
    }

    #[actix_rt::test]
    async fn bound_refuses_and_returns_the_item() {
        let q = Queue::<&'static str>::new(2).start();
        q.send(AddToQueue("a")).await.unwrap().unwrap();
        q.send(AddToQueue("b")).await.unwrap().unwrap();
        let full = q.send(AddToQueue("c")).await.unwrap().unwrap_err();
        assert_eq!((full.bound, full.item), (2, "c"));
        assert_eq!(q.send(Len::new()).await.unwrap(), 2);
        // Room again once an item is taken.
        q.send(GetFirstElement::new()).await.unwrap();
        q.send(AddToQueue("c")).await.unwrap().unwrap();
    }

    #[actix_rt::test]
    async fn requeue_goes_first_even_past_the_bound() {
        let q = Queue::<u32>::new(1).start();
        q.send(AddToQueue(1)).await.unwrap().unwrap();
        q.send(Requeue(0)).await.unwrap();
        assert_eq!(q.send(Len::new()).await.unwrap(), 2);
        assert_eq!(q.send(GetFirstElement::new()).await.unwrap(), Some(0));
        assert_eq!(q.send(GetFirstElement::new()).await.unwrap(), Some(1));
    }

    #[actix_rt::test]
    async fn waiters_are_served_in_arrival_order() {
        let q = Queue::<u32>::new(10).start();
        let first = next_element(&q);
        let second = next_element(&q);
        // Both requests are in the mailbox before the items: the queue parks them in order.
        let (a, b) = futures_util::future::join(async { first.await.unwrap() }, async {
            q.send(AddToQueue(7)).await.unwrap().unwrap();
            q.send(AddToQueue(8)).await.unwrap().unwrap();
            second.await.unwrap()
        })
        .await;
        assert_eq!((a, b), (7, 8));
        assert_eq!(q.send(Len::new()).await.unwrap(), 0);
    }

    #[actix_rt::test]
    async fn a_dropped_waiter_loses_nothing() {
        let q = Queue::<u32>::new(10).start();
        let (abandoned, gone) = oneshot::channel();
        q.send(NextElement(abandoned)).await.unwrap();
        let (live, item) = oneshot::channel();
        q.send(NextElement(live)).await.unwrap();
        drop(gone);
        q.send(AddToQueue(1)).await.unwrap().unwrap();
        assert_eq!(item.await.unwrap(), 1);
        q.send(AddToQueue(2)).await.unwrap().unwrap();
        assert_eq!(q.send(GetFirstElement::new()).await.unwrap(), Some(2));
    }

    #[actix_rt::test]
    async fn remove_where_takes_the_picked_items_and_keeps_the_order_of_the_rest() {
        let q = Queue::<u32>::new(10).start();
        for i in 0..6 {
            q.send(AddToQueue(i)).await.unwrap().unwrap();
        }
        let removed = q.send(RemoveWhere(Box::new(|i| i % 2 == 1))).await.unwrap();
        assert_eq!(removed, [1, 3, 5]);
        let mut rest = Vec::new();
        while let Some(i) = q.send(GetFirstElement::new()).await.unwrap() {
            rest.push(i);
        }
        assert_eq!(rest, [0, 2, 4]);
    }

    #[actix_rt::test]
    async fn reachable_as_a_system_service() {
        Queue::<String>::from_registry()
            .send(AddToQueue("x".to_string()))
            .await
            .unwrap()
            .unwrap();
        let got = Queue::<String>::from_registry()
            .send(GetFirstElement::new())
            .await
            .unwrap();
        assert_eq!(got.as_deref(), Some("x"));
    }
}
