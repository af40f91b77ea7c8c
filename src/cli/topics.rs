//! `cloner-worker topics create|delete|list`: the service's topics through the admin API (see
//! [`crate::kafka::topics`]).

use clap::Subcommand;

use crate::config::Settings;
use crate::kafka::topics::{self, TopicOutcome};

#[derive(Subcommand)]
pub enum TopicsAction {
    /// Create the todo, finished and dead-letter topics; existing ones are left as they are.
    Create,
    /// Delete the todo, finished and dead-letter topics.
    Delete,
    /// List the cluster's topics with their partitions and replication.
    List,
}

impl TopicsAction {
    pub fn run(self, settings: &Settings) -> anyhow::Result<()> {
        actix_rt::System::new().block_on(self.run_async(settings))
    }

    async fn run_async(self, settings: &Settings) -> anyhow::Result<()> {
        let names = topics::service_topics(settings);
        match self {
            TopicsAction::Create => {
                for (topic, outcome) in topics::create(settings, &names).await? {
                    match outcome {
                        TopicOutcome::Created => println!(
                            "created {topic} ({} partitions, replication {})",
                            settings.topics.partitions, settings.topics.replication
                        ),
                        _ => println!("{topic} exists already"),
                    }
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
        }
        Ok(())
    }
}
