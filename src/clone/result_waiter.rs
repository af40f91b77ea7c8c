//! `ResultWaiter`: hands each ClonedChunk read from the finished topic to whoever waits for it.
//!
//! A result is matched to a request by its original chunk (pair, from, until, task id): the
//! service copies the chunk it answers into every result. Any number of requests may wait at
//! once, and two waiting for the same chunk both get the one answer. A result nobody waits
//! for (another client's, or a second copy of one already delivered) is counted and dropped.
//!
//! It must never block on the reader: records arrive as messages from a task of their own, so
//! a slow or failing broker only delays answers, it never stalls the actor.

use std::collections::HashMap;

use actix::prelude::*;
use prost::Message as _;
use tokio::sync::oneshot;

use crate::clone::requester::TopicReader;
use crate::proto::{ClonedChunk, TodoChunk};

/// What identifies a chunk's answer: the chunk itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChunkId {
    pub pair: String,
    pub from: i64,
    pub until: i64,
    pub task_dbid: i32,
    /// The trade ids asked for, if asked by ids.
    pub ids: Option<(i64, Option<i64>)>,
}

impl From<&TodoChunk> for ChunkId {
    fn from(c: &TodoChunk) -> Self {
        ChunkId {
            pair: c.currency_pair.clone(),
            from: c.from_unix_ts,
            until: c.until_unix_ts,
            task_dbid: c.task_dbid,
            ids: c.from_trade_id.map(|from| (from, c.until_trade_id)),
        }
    }
}

/// Counters for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaiterStats {
    /// Results handed to at least one waiter.
    pub delivered: u64,
    /// Results nobody waited for: another client's, or a copy of one delivered already.
    pub strays: u64,
    /// Records on the topic that are not ClonedChunks with their original chunk.
    pub unreadable: u64,
}

/// The actor. Waiters are registered before their chunk is published, so an answer that comes
/// quickly is not missed.
#[derive(Default)]
pub struct ResultWaiter {
    /// Who waits for which chunk; an entry goes when its answer comes.
    waiting: HashMap<ChunkId, Vec<oneshot::Sender<ClonedChunk>>>,
    stats: WaiterStats,
    /// The task reading the topic; stopped with the actor.
    reader: Option<tokio::task::JoinHandle<()>>,
}

impl ResultWaiter {
    /// Starts the actor with a task feeding it every record `reader` reads.
    pub fn reading(reader: TopicReader) -> Addr<ResultWaiter> {
        ResultWaiter::create(|ctx| {
            // Weak: the actor stops when its users drop their addresses, and with it the task.
            let weak = ctx.address().downgrade();
            let task = actix_rt::spawn(async move {
                loop {
                    match reader.next().await {
                        Ok(record) => {
                            let result = record
                                .payload
                                .as_deref()
                                .and_then(|p| ClonedChunk::decode(p).ok());
                            let Some(addr) = weak.upgrade() else { return };
                            addr.do_send(Arrived(result));
                        }
                        // librdkafka reports broker trouble here and keeps trying by itself.
                        Err(e) => log::warn!("reading results: {e:#}"),
                    }
                }
            });
            ResultWaiter {
                reader: Some(task),
                ..ResultWaiter::default()
            }
        })
    }
}

impl Actor for ResultWaiter {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(task) = self.reader.take() {
            task.abort();
        }
    }
}

/// Registers a waiter for `chunk`'s result; the receiver gets it once it is read.
#[derive(Message)]
#[rtype(result = "oneshot::Receiver<ClonedChunk>")]
pub struct Await(pub TodoChunk);

impl Handler<Await> for ResultWaiter {
    type Result = MessageResult<Await>;

    fn handle(&mut self, msg: Await, _: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let waiters = self.waiting.entry(ChunkId::from(&msg.0)).or_default();
        // Waiters that gave up are dropped here, so an entry never grows without bound.
        waiters.retain(|w| !w.is_closed());
        waiters.push(tx);
        MessageResult(rx)
    }
}

/// A record read from the topic: a result, or `None` if it is not one.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Arrived(pub Option<ClonedChunk>);

impl Handler<Arrived> for ResultWaiter {
    type Result = ();

    fn handle(&mut self, msg: Arrived, _: &mut Self::Context) {
        let Some(id) = msg.0.as_ref().and_then(|r| r.original_todo_chunk.as_ref()) else {
            self.stats.unreadable += 1;
            return;
        };
        let result = msg.0.as_ref().expect("checked above");
        let key = ChunkId::from(id);
        let waiters = self.waiting.remove(&key).or_else(|| {
            // A copy without ids, of a chunk asked by ids: a service older than them answered
            // the window by time. One such waiter hears it (and fails with why).
            let by_time = key.ids.is_none();
            let asked = self
                .waiting
                .keys()
                .find(|k| {
                    by_time
                        && k.ids.is_some()
                        && ChunkId {
                            ids: None,
                            ..(*k).clone()
                        } == key
                })?
                .clone();
            self.waiting.remove(&asked)
        });
        let Some(waiters) = waiters else {
            self.stats.strays += 1;
            return;
        };
        let mut delivered = false;
        for waiter in waiters {
            delivered |= waiter.send(result.clone()).is_ok();
        }
        if delivered {
            self.stats.delivered += 1;
        } else {
            self.stats.strays += 1;
        }
    }
}

/// The counters so far.
#[derive(Message)]
#[rtype(result = "WaiterStats")]
pub struct GetWaiterStats;

impl Handler<GetWaiterStats> for ResultWaiter {
    type Result = MessageResult<GetWaiterStats>;

    fn handle(&mut self, _: GetWaiterStats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::chunk;
    use crate::proto::cloned_chunk;

    fn todo(from: i64) -> TodoChunk {
        TodoChunk {
            currency_pair: "BTC_ETH".into(),
            from_unix_ts: from,
            until_unix_ts: from + 9,
            task_dbid: 7,
            ..Default::default()
        }
    }

    fn answer(chunk: &TodoChunk) -> Arrived {
        Arrived(Some(chunk::result(
            chunk,
            cloned_chunk::Result::Complete,
            vec![],
            "",
        )))
    }

    #[actix_rt::test]
    async fn two_waiters_for_one_chunk_both_get_its_answer() {
        let waiter = ResultWaiter::default().start();
        let a = waiter.send(Await(todo(0))).await.unwrap();
        let b = waiter.send(Await(todo(0))).await.unwrap();
        let other = waiter.send(Await(todo(10))).await.unwrap();
        waiter.send(answer(&todo(0))).await.unwrap();
        assert_eq!(a.await.unwrap().original_todo_chunk, Some(todo(0)));
        assert_eq!(b.await.unwrap().original_todo_chunk, Some(todo(0)));
        waiter.send(answer(&todo(10))).await.unwrap();
        assert_eq!(other.await.unwrap().original_todo_chunk, Some(todo(10)));
        let stats = waiter.send(GetWaiterStats).await.unwrap();
        assert_eq!((stats.delivered, stats.strays), (2, 0));
    }

    #[actix_rt::test]
    async fn results_that_belong_to_nobody_are_dropped() {
        let waiter = ResultWaiter::default().start();
        let mine = waiter.send(Await(todo(0))).await.unwrap();
        // Another client's chunk: same window, another task id.
        let mut theirs = todo(0);
        theirs.task_dbid = 8;
        waiter.send(answer(&theirs)).await.unwrap();
        waiter.send(Arrived(None)).await.unwrap();
        waiter.send(answer(&todo(0))).await.unwrap();
        // A second copy (the service answered twice) finds nobody waiting.
        waiter.send(answer(&todo(0))).await.unwrap();
        assert!(mine.await.is_ok());
        let stats = waiter.send(GetWaiterStats).await.unwrap();
        assert_eq!(
            stats,
            WaiterStats {
                delivered: 1,
                strays: 2,
                unreadable: 1
            }
        );
    }

    #[actix_rt::test]
    async fn blocks_of_ids_are_told_apart_and_an_answer_without_them_reaches_one() {
        let waiter = ResultWaiter::default().start();
        let by_ids = |from: i64| TodoChunk {
            from_trade_id: Some(from),
            until_trade_id: Some(from + 1000),
            ..todo(0)
        };
        let first = waiter.send(Await(by_ids(0))).await.unwrap();
        let second = waiter.send(Await(by_ids(1000))).await.unwrap();
        waiter.send(answer(&by_ids(1000))).await.unwrap();
        assert_eq!(
            second.await.unwrap().original_todo_chunk,
            Some(by_ids(1000))
        );
        // A service older than ids echoes the window without them: the one left waiting hears
        // it (and the asker says why it fails), rather than waiting for ever.
        waiter.send(answer(&todo(0))).await.unwrap();
        assert_eq!(first.await.unwrap().original_todo_chunk, Some(todo(0)));
        let stats = waiter.send(GetWaiterStats).await.unwrap();
        assert_eq!((stats.delivered, stats.strays), (2, 0));
    }

    #[actix_rt::test]
    async fn a_waiter_that_gave_up_is_not_an_answer_delivered() {
        let waiter = ResultWaiter::default().start();
        drop(waiter.send(Await(todo(0))).await.unwrap());
        waiter.send(answer(&todo(0))).await.unwrap();
        let stats = waiter.send(GetWaiterStats).await.unwrap();
        assert_eq!((stats.delivered, stats.strays), (0, 1));
    }
}
