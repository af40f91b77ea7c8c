//! `cloner-worker topics create|delete|list|brokers`: the service's topics through the admin API (see
//! [`crate::kafka::topics`]).

use clap::Subcommand;

use crate::config::Settings;
use crate::kafka::topics::{self, TopicOutcome};

#[derive(Subcommand)]
pub enum TopicsAction {
    /// Create the todo, finished and dead-letter topics; existing ones are left as they are.
    /// Unless configured, the replication is 3 with min.insync.replicas 2 on 3 or more brokers,
    /// otherwise the broker count; what was chosen, and why, is printed.
    Create,
    /// Delete the todo, finished and dead-letter topics.
    Delete,
    /// List the cluster's topics with their partitions and replication.
    List,
    /// List the brokers the cluster's metadata names: id and advertised address, one a line.
    Brokers,
}

impl TopicsAction {
    pub fn run(self, settings: &Settings) -> anyhow::Result<()> {
        actix_rt::System::new().block_on(self.run_async(settings))
    }

    async fn run_async(self, settings: &Settings) -> anyhow::Result<()> {
        let names = topics::service_topics(settings);
        match self {
            TopicsAction::Create => {
                let (plan, outcomes) = topics::create(settings, &names).await?;
                let min_insync = plan
                    .min_insync_replicas
                    .map(|m| format!(", min.insync.replicas {m}"))
                    .unwrap_or_default();
                for (topic, outcome) in &outcomes {
                    match outcome {
                        TopicOutcome::Created => println!(
                            "created {topic} ({} partitions, replication {}{min_insync})",
                            settings.topics.partitions, plan.replication
                        ),
                        _ => println!("{topic} exists already (left as it is)"),
                    }
                }
                if outcomes.iter().any(|(_, o)| *o == TopicOutcome::Created) {
                    println!("{}", plan.note);
                }
            }
            TopicsAction::Delete => {
                for (topic, outcome) in topics::delete(settings, &names).await? {
                    match outcome {
                        TopicOutcome::Deleted => println!("deleted {topic}"),
                        _ => println!("{topic} did not exist"),
                    }
                }
            }
            TopicsAction::List => {
                for t in topics::list(settings)? {
                    println!(
                        "{}\t{} partitions\treplication {}",
                        t.name, t.partitions, t.replication
                    );
                }
            }
            TopicsAction::Brokers => {
                for b in topics::brokers(settings)? {
                    println!("{}\t{}", b.id, b.address);
                }
            }
        }
        Ok(())
    }
}
